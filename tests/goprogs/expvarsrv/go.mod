module gctuner.test/expvarsrv

go 1.21
