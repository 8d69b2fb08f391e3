import CNI

LoopbackPlugin().main()
