IPAMPlugin().main()
