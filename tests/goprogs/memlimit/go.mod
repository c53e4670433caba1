module github.com/gc-tuner/gc-tuner/tests/goprogs/memlimit

go 1.22
