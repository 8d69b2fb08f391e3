// swift-tools-version:6.1
import PackageDescription

// Plugins are thin cores over shared modules, all in one multi-call executable (`pier-cni`).
// Imports point one way (docs/architecture.md): plugins -> IPAM / PierTables / PluginSupport
// -> Netlink / Firewall -> NetlinkCore -> CMnl / CNftnl / CPierShim, with CNI used by all.

// Every product module is built without the implicit `_StringProcessing` import: its
// regex engine and `_RegexParser` (~0.8 MB of code) would otherwise land in every plugin
// process through a single String algorithm call (docs/design.md, "Peak RSS").
let pluginGraph: [SwiftSetting] = [.unsafeFlags(["-Xfrontend", "-disable-implicit-string-processing-module-import"])]
// Release only: code optimised for size, every function in its own section, so the linker can
// place the functions a plugin exec runs next to each other (scripts/build-release passes the
// order, bench/function-order.py makes it).
let releaseCode: [SwiftSetting] = [
    .unsafeFlags(["-Osize", "-Xfrontend", "-function-sections"], .when(configuration: .release))
]
let package = Package(
    name: "Pier",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "pier", targets: ["pier"]),
        .executable(name: "pier-cni", targets: ["pier-cni"]),
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
        // libcurl for the etcd store, loaded with dlopen on first use (only its header is needed
        // to build): linked, its ~30 libraries would slow every plugin start (docs/design.md).
        .target(name: "CCurl"),

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
        .target(name: "PierTables", dependencies: ["Firewall", "IPAddressing", "NetlinkCore"]),
        // Every on-disk format and default path: configs, leases, the result cache, state layout.
        .target(name: "PierState", dependencies: ["CNI", "IPAddressing"]),
        .target(name: "ClusterStore", dependencies: ["CCurl", "JSON", "IPAddressing", "PierState"]),
        // DNS for user-defined networks: messages, the records store, the resolver and the
        // `pier-dns` server that the `names` plugin starts on demand.
        .target(name: "NameService", dependencies: ["JSON", "IPAddressing", "PierState"]),
        .target(name: "IPAM", dependencies: ["CNI", "JSON", "IPAddressing", "ClusterStore", "PierState"]),
        // Services: records of members and VIPs, and what they make of the kernel and the names.
        .target(
            name: "Services",
            dependencies: [
                "CNI", "ClusterStore", "Firewall", "IPAM", "IPAddressing", "NameService", "NetNS", "Netlink", "Overlay",
                "PierTables", "PierState",
            ]),
        .target(
            name: "Diagnostics",
            dependencies: [
                "CNI", "NetNS", "Netlink", "Firewall", "IPAddressing", "PierTables", "PluginSupport", "ClusterStore",
                "Overlay", "PierState",
            ]),
        // Containers over namespaces, conflist execution, result cache, GC: what `pier` runs.
        .target(
            name: "Runtime",
            dependencies: [
                "CNI", "NetNS", "Netlink", "CPierShim", "IPAddressing", "PierState", "Plugins", "IPAM", "Services",
                "ClusterStore",
            ]),
        .target(
            name: "Overlay", dependencies: ["JSON", "ClusterStore", "Netlink", "NetNS", "IPAddressing", "PierState"]),

        // Plugins: each a directory of plugins/ with its README; together one module, so the one
        // multi-call executable below can run any of them by its invocation name.
        .target(
            name: "Plugins",
            dependencies: [
                "CNI", "PluginSupport", "Netlink", "NetNS", "IPAddressing", "Firewall", "PierTables", "IPAM",
                "ClusterStore", "Overlay", "PierState", "JSON", "NameService",
            ],
            path: "plugins",
            exclude: [
                "bridge/README.md", "firewall/README.md", "host/README.md", "ipam/README.md", "loopback/README.md",
                "macvlan/README.md", "names/README.md", "portmap/README.md", "tuning/README.md",
                "vxlan-overlay/README.md", "bandwidth/README.md",
            ],
            plugins: ["SourceDigest"]),
        // `PluginBuild.sourceDigest` for Plugins: which sources a pier-cni was built from, so that
        // `pier` runs a plugin in-process only when it carries the very same plugin code.
        .plugin(name: "SourceDigest", capability: .buildTool(), path: "BuildTools/SourceDigest"),
        .executableTarget(
            name: "pier-cni", dependencies: ["CNI", "Plugins"],
            // The unwinder (libgcc_eh) linked in rather than libgcc_s.so mapped and relocated in
            // every plugin exec (docs/design.md, "Peak RSS").
            linkerSettings: [.unsafeFlags(["-Xclang-linker", "-static-libgcc"], .when(configuration: .release))]),

        // The runtime and diagnostics CLI.
        .executableTarget(
            name: "pier",
            dependencies: [
                "CNI", "Runtime", "Diagnostics", "NetNS", "PluginSupport", "Netlink", "ClusterStore", "Overlay",
                "PierState", "Plugins", "PierTables", "Services",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            // As pier-cni: no libgcc_s.so to map and relocate on every `pier` start.
            linkerSettings: [.unsafeFlags(["-Xclang-linker", "-static-libgcc"], .when(configuration: .release))]),

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
        .testTarget(name: "RuntimeTests", dependencies: ["Runtime", "CNI", "PierState", "Plugins", "PierTestSupport"]),
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
        // Plugin cores over a fake kernel (PluginKernel): no root, no namespaces.
        .testTarget(
            name: "PluginsTests", dependencies: ["Plugins", "PluginSupport", "CNI", "Netlink", "Firewall", "NetNS"]),
        .testTarget(
            name: "FirewallPluginTests",
            dependencies: ["PierTables", "Firewall", "NetlinkCore", "IPAddressing", "PierTestSupport"]),
        .testTarget(name: "BandwidthTests", dependencies: ["PierTestSupport"]),
        // Real runtimes (Podman's CNI backend, containerd's CRI) over the plugin directory.
        .testTarget(name: "InteropTests", dependencies: ["PierTestSupport"], exclude: ["cri", "README.md"]),
        .testTarget(
            name: "NameServiceTests", dependencies: ["NameService", "IPAddressing", "JSON", "PierState", "PierTestSupport"]),
    ]
)

// Build settings for every product module (not tests or their support library).
for target in package.targets where target.type == .regular || target.type == .executable {
    guard target.name != "PierTestSupport" else { continue }
    target.swiftSettings = (target.swiftSettings ?? []) + pluginGraph + releaseCode
}
