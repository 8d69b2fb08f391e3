import CNI

BridgePlugin().main()
