import CNI

PortmapPlugin().main()
