module github.com/gctuner/gc-tuner/agent

go 1.22
