"""gc-tuner: tunes the Go garbage collector (GOGC / GOMEMLIMIT) of the workloads it watches.

Layers, lowest first; a layer never imports a higher one (tests/test_layers.py enforces it):

    input/      sources and parsers: gctrace, expvar, Prometheus text, the agent's runtime/metrics JSON
    model/      per-pod sample windows and policy specs
    logic/      fits, strategies (Formula, Budget), GOMEMLIMIT rendering, the decision step
    actuation/  the agent endpoint client and the Deployment env patch
    loop/       one tuning cycle (gather -> window -> fit -> strategy -> decide -> act -> status),
                shared by the operator and `gc-tuner local`
    controller/ kopf handlers only, thin
    cli/        the `gc-tuner` command
"""

__version__ = "0.1.0"
