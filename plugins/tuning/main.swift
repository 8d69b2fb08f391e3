import CNI

TuningPlugin().main()
