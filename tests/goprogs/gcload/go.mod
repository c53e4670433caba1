module gctuner.test/gcload

go 1.21
