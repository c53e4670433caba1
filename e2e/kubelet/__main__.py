"""`python -m e2e.kubelet --kubeconfig ... --node-name ... --port ...`: run the test kubelet."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from e2e.kubelet.kubelet import Kubelet, KubeletConfig


def _image(text: str) -> tuple[str, str]:
    pattern, sep, command = text.partition("=")
    if not sep or not pattern or not command:
        raise argparse.ArgumentTypeError(f"--image wants PATTERN=COMMAND, got {text!r}")
    return pattern, command


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m e2e.kubelet", description=__doc__)
    p.add_argument("--kubeconfig", type=Path, required=True)
    p.add_argument("--node-name", required=True)
    p.add_argument("--port", type=int, required=True, help="HTTPS port for the logs endpoint")
    p.add_argument("--tls-cert", type=Path, required=True)
    p.add_argument("--tls-key", type=Path, required=True)
    p.add_argument("--client-ca", type=Path, required=True, help="CA of the apiserver's client cert")
    p.add_argument("--state-dir", type=Path, required=True)
    p.add_argument("--ip-block-start", type=int, default=1, help="first B tried for pod IPs 127.0.B.N")
    p.add_argument(
        "--image",
        type=_image,
        action="append",
        default=[],
        metavar="PATTERN=COMMAND",
        help="map an image pattern to a command (repeatable; overrides built-in mappings)",
    )
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per API call drowns the pod events
    args.state_dir.mkdir(parents=True, exist_ok=True)
    cfg = KubeletConfig(
        kubeconfig=args.kubeconfig,
        node_name=args.node_name,
        port=args.port,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        client_ca=args.client_ca,
        state_dir=args.state_dir,
        ip_block_start=args.ip_block_start,
        images=dict(args.image),
    )
    asyncio.run(Kubelet(cfg).run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
