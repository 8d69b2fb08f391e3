import IPAM

IPAMPlugin().main()
