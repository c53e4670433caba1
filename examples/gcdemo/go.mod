module github.com/gc-tuner/gc-tuner/examples/gcdemo

go 1.22
