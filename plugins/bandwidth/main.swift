import CNI

BandwidthPlugin().main()
