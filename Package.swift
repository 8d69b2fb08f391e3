// swift-tools-version:6.1
import PackageDescription

// Plugins are thin executables over shared modules. Imports point one way:
// plugins -> IPAM / Firewall / Netlink -> NetlinkCore -> CMnl / CNftnl / CPierShim, with CNI used by all.
let package = Package(
    name: "Pier",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "pier", targets: ["pier"]),
        .executable(name: "ipam", targets: ["ipam"]),
        .executable(name: "bridge", targets: ["bridge"]),
        .executable(name: "macvlan", targets: ["macvlan"]),
        .executable(name: "host", targets: ["host"]),
        .executable(name: "vxlan-overlay", targets: ["vxlan-overlay"]),
        .executable(name: "portmap", targets: ["portmap"]),
        .executable(name: "loopback", targets: ["loopback"]),
        .executable(name: "tuning", targets: ["tuning"]),
        .executable(name: "firewall", targets: ["firewall"]),
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

        // Shared modules. Everything a plugin links stays free of Foundation (docs/design.md).
        .target(name: "IPAddressing"),
        // The one JSON implementation: order-keeping parser and writer, re-exported by CNI.
        .target(name: "JSON"),
        .target(name: "CNI", dependencies: ["JSON", "IPAddressing"]),
        .target(name: "NetNS", dependencies: ["CPierShim"]),
        // One netlink core (socket, framing, attributes, ACKs and dumps, the test fake) under
        // rtnetlink (Netlink) and nf_tables/ctnetlink (Firewall).
        .target(name: "NetlinkCore", dependencies: ["CMnl", "CPierShim", "NetNS"]),
        .target(name: "Netlink", dependencies: ["NetlinkCore", "CMnl", "CPierShim", "NetNS", "IPAddressing"]),
        .target(
            name: "Firewall", dependencies: ["NetlinkCore", "CMnl", "CNftnl", "CPierShim", "NetNS", "IPAddressing"]),
        .target(name: "PluginSupport", dependencies: ["CNI", "NetNS", "Netlink", "Firewall", "IPAddressing"]),
        .target(name: "PierTables", dependencies: ["Firewall", "IPAddressing"]),
        // Every on-disk format and default path: configs, leases, the result cache, state layout.
        .target(name: "PierState", dependencies: ["CNI", "IPAddressing"]),
        .target(name: "ClusterStore", dependencies: ["JSON", "IPAddressing", "PierState"]),
        .target(name: "IPAM", dependencies: ["CNI", "JSON", "IPAddressing", "ClusterStore", "PierState"]),
        .target(
            name: "Diagnostics",
            dependencies: [
                "CNI", "NetNS", "Netlink", "Firewall", "IPAddressing", "PierTables", "PluginSupport", "ClusterStore",
                "Overlay", "PierState",
            ]),
        // Containers over namespaces, conflist execution, result cache, GC: what `pier` runs.
        .target(name: "Runtime", dependencies: ["CNI", "NetNS", "Netlink", "CPierShim", "IPAddressing", "PierState"]),
        .target(
            name: "Overlay", dependencies: ["JSON", "ClusterStore", "Netlink", "NetNS", "IPAddressing", "PierState"]),

        // Plugins: one executable each, a thin main over the shared modules.
        .executableTarget(
            name: "ipam", dependencies: ["CNI", "IPAM"], path: "plugins/ipam", exclude: ["README.md"]),
        .executableTarget(
            name: "bridge",
            dependencies: [
                "CNI", "PluginSupport", "Netlink", "NetNS", "IPAddressing", "Firewall", "PierTables", "IPAM",
            ],
            path: "plugins/bridge", exclude: ["README.md"]),
        .executableTarget(
            name: "macvlan", dependencies: ["CNI", "PluginSupport", "Netlink", "NetNS", "IPAddressing", "IPAM"],
            path: "plugins/macvlan", exclude: ["README.md"]),
        .executableTarget(
            name: "host",
            dependencies: ["CNI", "PluginSupport", "Netlink", "NetNS", "IPAddressing", "IPAM", "PierState"],
            path: "plugins/host", exclude: ["README.md"]),
        .executableTarget(
            name: "vxlan-overlay",
            dependencies: [
                "CNI", "PluginSupport", "Netlink", "NetNS", "IPAddressing", "PierTables", "Firewall", "ClusterStore",
                "Overlay", "IPAM",
            ],
            path: "plugins/vxlan-overlay", exclude: ["README.md"]),
        .executableTarget(
            name: "portmap",
            dependencies: [
                "CNI", "PluginSupport", "Netlink", "NetNS", "IPAddressing", "Firewall", "PierTables",
            ],
            path: "plugins/portmap", exclude: ["README.md"]),
        .executableTarget(
            name: "loopback", dependencies: ["CNI", "PluginSupport", "Netlink", "NetNS", "IPAddressing"],
            path: "plugins/loopback", exclude: ["README.md"]),
        .executableTarget(
            name: "tuning", dependencies: ["CNI", "PluginSupport", "Netlink", "NetNS", "IPAddressing", "PierState"],
            path: "plugins/tuning", exclude: ["README.md"]),
        .executableTarget(
            name: "firewall",
            dependencies: ["CNI", "PluginSupport", "IPAddressing", "Firewall", "PierTables"],
            path: "plugins/firewall", exclude: ["README.md"]),

        // The runtime and diagnostics CLI.
        .executableTarget(
            name: "pier",
            dependencies: [
                "CNI", "Runtime", "Diagnostics", "NetNS", "PluginSupport", "Netlink", "ClusterStore", "Overlay",
                "PierState", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),

        // Tests.
        .target(name: "PierTestSupport", path: "Tests/PierTestSupport"),
        .testTarget(name: "IPAddressingTests", dependencies: ["IPAddressing"]),
        .testTarget(name: "CNITests", dependencies: ["CNI", "IPAddressing"]),
        .testTarget(name: "NetNSTests", dependencies: ["NetNS", "PierTestSupport"]),
        .testTarget(name: "NetlinkCoreTests", dependencies: ["NetlinkCore", "CPierShim"]),
        .testTarget(
            name: "NetlinkTests", dependencies: ["Netlink", "NetlinkCore", "PluginSupport", "PierTestSupport"]),
        .testTarget(
            name: "FirewallTests",
            dependencies: [
                "Firewall", "NetlinkCore", "PierTables", "CMnl", "CNftnl", "NetNS", "IPAddressing", "PierTestSupport",
            ]),
        .testTarget(name: "PierTestSupportTests", dependencies: ["PierTestSupport"]),
        .testTarget(name: "ClusterStoreTests", dependencies: ["ClusterStore", "JSON", "PierState", "PierTestSupport"]),
        .testTarget(name: "IPAMTests", dependencies: ["IPAM", "CNI", "ClusterStore", "PierState", "PierTestSupport"]),
        .testTarget(name: "PierStateTests", dependencies: ["PierState", "CNI", "IPAddressing", "PierTestSupport"]),
        .testTarget(name: "BridgeTests", dependencies: ["PierTestSupport"]),
        .testTarget(name: "RuntimeTests", dependencies: ["Runtime", "CNI", "PierState", "PierTestSupport"]),
        .testTarget(name: "PierCLITests", dependencies: ["PierTestSupport"], exclude: ["cnitool"]),
        .testTarget(name: "MacvlanTests", dependencies: ["PierTestSupport"]),
        .testTarget(name: "HostPluginTests", dependencies: ["PierTestSupport"]),
        .testTarget(
            name: "DiagnosticsTests",
            dependencies: [
                "Diagnostics", "CNI", "PluginSupport", "NetNS", "IPAddressing", "PierState", "PierTestSupport",
            ]),
        .testTarget(
            name: "OverlayTests",
            dependencies: ["Overlay", "ClusterStore", "Netlink", "IPAddressing", "PierTestSupport"]),
        .testTarget(name: "PortmapTests", dependencies: ["PierTestSupport"]),
        .testTarget(name: "LoopbackTests", dependencies: ["PierTestSupport"]),
        .testTarget(name: "TuningTests", dependencies: ["PierTestSupport"]),
        .testTarget(
            name: "FirewallPluginTests",
            dependencies: ["PierTables", "Firewall", "NetlinkCore", "IPAddressing", "PierTestSupport"]),
    ]
)
