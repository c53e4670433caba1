module gc-tuner.local/testprog

go 1.26.0
