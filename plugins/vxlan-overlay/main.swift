import CNI

OverlayPlugin().main()
