import CNI

HostPlugin().main()
