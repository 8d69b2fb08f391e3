import CNI

MacvlanPlugin().main()
