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
        .executable(name: "macvlan", targets: ["macvlan"]),
        .executable(name: "host", targets: ["host"]),
        .executable(name: "vxlan-overlay", targets: ["vxlan-overlay"]),
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
        .target(
            name: "Diagnostics",
            dependencies: [
                "CNI", "NetNS", "Netlink", "Firewall", "IPAddressing", "PierTables", "PluginSupport", "ClusterStore",
            ]),
        // Containers over namespaces, conflist execution, result cache, GC: what `pier` runs.
        .target(name: "Runtime", dependencies: ["CNI", "NetNS", "Netlink", "CPierShim", "IPAddressing"]),
        .target(name: "Overlay", dependencies: ["ClusterStore", "Netlink", "NetNS", "IPAddressing"]),

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
            name: "host", dependencies: ["CNI", "PluginSupport", "Netlink", "NetNS", "IPAddressing", "IPAM"],
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

        // The runtime and diagnostics CLI.
        .executableTarget(
            name: "pier",
            dependencies: [
                "CNI", "Runtime", "Diagnostics", "NetNS", "PluginSupport", "Netlink", "ClusterStore", "Overlay",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),

        // Tests.
        .target(name: "PierTestSupport", path: "Tests/PierTestSupport"),
        .testTarget(name: "IPAddressingTests", dependencies: ["IPAddressing"]),
        .testTarget(name: "CNITests", dependencies: ["CNI", "IPAddressing"]),
        .testTarget(name: "NetNSTests", dependencies: ["NetNS", "PierTestSupport"]),
        .testTarget(name: "NetlinkTests", dependencies: ["Netlink", "PluginSupport", "PierTestSupport"]),
        .testTarget(name: "FirewallTests", dependencies: ["Firewall", "NetNS", "IPAddressing", "PierTestSupport"]),
        .testTarget(name: "PierTestSupportTests", dependencies: ["PierTestSupport"]),
        .testTarget(name: "ClusterStoreTests", dependencies: ["ClusterStore", "PierTestSupport"]),
        .testTarget(name: "IPAMTests", dependencies: ["IPAM", "CNI", "ClusterStore", "PierTestSupport"]),
        .testTarget(name: "BridgeTests", dependencies: ["PierTestSupport"]),
        .testTarget(name: "RuntimeTests", dependencies: ["Runtime", "CNI", "PierTestSupport"]),
        .testTarget(name: "PierCLITests", dependencies: ["PierTestSupport"], exclude: ["cnitool"]),
        .testTarget(name: "MacvlanTests", dependencies: ["PierTestSupport"]),
        .testTarget(name: "HostPluginTests", dependencies: ["PierTestSupport"]),
        .testTarget(
            name: "DiagnosticsTests",
            dependencies: [
                "Diagnostics", "CNI", "PluginSupport", "NetNS", "IPAddressing", "PierTestSupport",
            ]),
        .testTarget(
            name: "OverlayTests",
            dependencies: ["Overlay", "ClusterStore", "Netlink", "IPAddressing", "PierTestSupport"]),
        .testTarget(name: "PortmapTests", dependencies: ["PierTestSupport"]),
        // Real runtimes (Podman's CNI backend, containerd's CRI) over the plugin directory.
        .testTarget(name: "InteropTests", dependencies: ["PierTestSupport"], exclude: ["cri", "README.md"]),
    ]
)
