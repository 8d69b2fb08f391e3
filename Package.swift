// swift-tools-version:6.1
import PackageDescription

// Plugins are thin executables over shared modules. Imports point one way:
// plugins -> IPAM / Firewall / Netlink -> CMnl / CNftnl / CPierShim, with CNI used by all.
let package = Package(
    name: "Pier",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "pier", targets: ["pier"]),
        .executable(name: "ipam", targets: ["ipam"]),
        .executable(name: "bridge", targets: ["bridge"]),
        .executable(name: "portmap", targets: ["portmap"]),
        .library(name: "CNI", targets: ["CNI"]),
        .library(name: "Netlink", targets: ["Netlink"]),
        .library(name: "Firewall", targets: ["Firewall"]),
        .library(name: "NetNS", targets: ["NetNS"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0")
    ],
    targets: [
        // C libraries, imported through pkg-config.
        .systemLibrary(name: "CMnl", pkgConfig: "libmnl", providers: [.apt(["libmnl-dev"])]),
        .systemLibrary(name: "CNftnl", pkgConfig: "libnftnl", providers: [.apt(["libnftnl-dev"])]),
        // Macros, variadics and uapi constants that Swift cannot import directly.
        .target(name: "CPierShim"),

        // Shared modules.
        .target(name: "IPAddressing"),
        .target(name: "CNI", dependencies: ["IPAddressing"]),
        .target(name: "NetNS", dependencies: ["CPierShim"]),
        .target(name: "Netlink", dependencies: ["CMnl", "CPierShim", "NetNS", "IPAddressing"]),
        .target(name: "Firewall", dependencies: ["CMnl", "CNftnl", "CPierShim", "NetNS", "IPAddressing"]),
        .target(name: "PluginSupport", dependencies: ["CNI", "NetNS", "Netlink", "Firewall", "IPAddressing"]),
        .target(name: "PierTables", dependencies: ["Firewall", "IPAddressing"]),
        .target(name: "ClusterStore", dependencies: ["IPAddressing"]),
        .target(name: "IPAM", dependencies: ["CNI", "IPAddressing", "ClusterStore"]),

        // Plugins: one executable each, a thin main over the shared modules.
        .executableTarget(
            name: "ipam", dependencies: ["CNI", "IPAM"], path: "plugins/ipam", exclude: ["README.md"]),
        .executableTarget(
            name: "bridge", dependencies: [
                "CNI", "PluginSupport", "Netlink", "NetNS", "IPAddressing", "Firewall", "PierTables",
            ],
            path: "plugins/bridge", exclude: ["README.md"]),
        .executableTarget(
            name: "portmap", dependencies: [
                "CNI", "PluginSupport", "Netlink", "NetNS", "IPAddressing", "Firewall", "PierTables",
            ],
            path: "plugins/portmap", exclude: ["README.md"]),

        // The runtime and diagnostics CLI.
        .executableTarget(name: "pier", dependencies: [
            "CNI", "Netlink", "Firewall",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        // Tests.
        .target(name: "PierTestSupport", path: "Tests/PierTestSupport"),
        .testTarget(name: "IPAddressingTests", dependencies: ["IPAddressing"]),
        .testTarget(name: "CNITests", dependencies: ["CNI", "IPAddressing"]),
        .testTarget(name: "NetNSTests", dependencies: ["NetNS", "PierTestSupport"]),
        .testTarget(name: "NetlinkTests", dependencies: ["Netlink", "PierTestSupport"]),
        .testTarget(name: "FirewallTests", dependencies: ["Firewall", "PierTestSupport"]),
        .testTarget(name: "PierTestSupportTests", dependencies: ["PierTestSupport"]),
        .testTarget(name: "ClusterStoreTests", dependencies: ["ClusterStore", "PierTestSupport"]),
        .testTarget(name: "IPAMTests", dependencies: ["IPAM", "CNI", "ClusterStore", "PierTestSupport"]),
        .testTarget(name: "BridgeTests", dependencies: ["PierTestSupport"]),
        .testTarget(name: "PortmapTests", dependencies: ["PierTestSupport"]),
    ]
)
