import CNI

FirewallPlugin().main()
