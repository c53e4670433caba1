module github.com/gctuner/gc-tuner/bench/fleet/sim

go 1.23.0
