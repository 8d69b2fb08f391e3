// The smallest Swift plugin: prints a VERSION answer. Its peak RSS is the Swift runtime's floor.
print(#"{"cniVersion":"1.1.0","supportedVersions":["1.1.0"]}"#)
