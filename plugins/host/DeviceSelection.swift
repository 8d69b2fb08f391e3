import CNI
import Glibc
import IPAddressing
import Netlink
import PierState
import PluginSupport

/// Finds the host interface a device config names. Sysfs paths are read in the plugin's own
/// mount namespace, whose /sys a runtime (or `ip netns exec`) makes match its netns.
enum DeviceSelection {
    /// Drivers that take a PCI function away from the kernel's network stack (DPDK): such a
    /// device has no netdev to move.
    static let userspaceDrivers: Set<String> = ["vfio-pci", "uio_pci_generic", "igb_uio"]

    /// The one link all selectors agree on: code 7 when one matches nothing or they disagree.
    static func resolve(_ selectors: [DeviceSelector], netlink: RouteNetlink) throws -> Link {
        var chosen: (link: Link, selector: DeviceSelector)?
        for selector in selectors {
            let link = try resolve(selector, netlink: netlink)
            if let chosen, chosen.link.index != link.index {
                throw CNIError(
                    .invalidNetworkConfig,
                    "\(chosen.selector) is \(chosen.link.name) but \(selector) is \(link.name): they must name one device"
                )
            }
            chosen = (link, selector)
        }
        guard let chosen else {
            throw CNIError(.invalidNetworkConfig, "specify \"device\", \"hwaddr\", \"kernelpath\" or \"pciBusID\"")
        }
        guard chosen.link.flags & loopbackFlag == 0 else {
            throw CNIError(.invalidNetworkConfig, "\(chosen.selector) is the loopback interface, which cannot move")
        }
        return chosen.link
    }

    /// IFF_LOOPBACK.
    private static let loopbackFlag: UInt32 = 0x8

    private static func resolve(_ selector: DeviceSelector, netlink: RouteNetlink) throws -> Link {
        switch selector {
        case .name(let name):
            return try link(named: name, for: selector, netlink: netlink)
        case .hardwareAddress(let mac):
            guard let link = try netlink.links().first(where: { $0.mac == mac }) else {
                throw CNIError(.invalidNetworkConfig, "no host interface has \(selector)")
            }
            return link
        case .kernelPath(let path):
            guard path.hasPrefix("/sys/devices/"), isPlainPath(path) else {
                throw CNIError(
                    .invalidNetworkConfig, "\(selector) must be an absolute path below /sys/devices/ without \"..\"")
            }
            return try link(inNetDirectory: path + "/net", for: selector, netlink: netlink)
        case .pciAddress(let address):
            return try pciLink(address, for: selector, netlink: netlink)
        case .deviceID(let id):
            if isPCIAddress(id) { return try pciLink(id, for: selector, netlink: netlink) }
            guard isPlainComponent(id) else { throw CNIError(.invalidNetworkConfig, "invalid \(selector)") }
            return try link(inNetDirectory: "/sys/bus/auxiliary/devices/\(id)/net", for: selector, netlink: netlink)
        }
    }

    private static func pciLink(_ address: String, for selector: DeviceSelector, netlink: RouteNetlink) throws -> Link {
        guard isPCIAddress(address) else {
            throw CNIError(.invalidNetworkConfig, "\(selector) is not a PCI address like 0000:03:00.1")
        }
        let device = "/sys/bus/pci/devices/\(address)"
        if let driver = symbolicLinkTarget(device + "/driver"),
            let name = driver.split(separator: "/").last, userspaceDrivers.contains(String(name))
        {
            throw CNIError(
                .invalidNetworkConfig,
                "\(selector) is bound to \(name) (DPDK): it has no kernel interface to move, which Pier does not support"
            )
        }
        if let names = netDirectoryEntries(device + "/net"), !names.isEmpty {
            return try link(inNetDirectory: device + "/net", for: selector, netlink: netlink)
        }
        // virtio devices hang their netdev one level lower (…/virtio3/net/eth1).
        let children = (try? FileSystem.list(device)) ?? []
        for child in children.sorted() where child.hasPrefix("virtio") {
            if let names = netDirectoryEntries("\(device)/\(child)/net"), !names.isEmpty {
                return try link(inNetDirectory: "\(device)/\(child)/net", for: selector, netlink: netlink)
            }
        }
        throw CNIError(.invalidNetworkConfig, "\(selector) has no network interface on this host")
    }

    /// The first interface listed in a sysfs `net/` directory (the reference takes the first too).
    private static func link(inNetDirectory directory: String, for selector: DeviceSelector, netlink: RouteNetlink)
        throws -> Link
    {
        guard let name = netDirectoryEntries(directory)?.first else {
            throw CNIError(
                .invalidNetworkConfig, "\(selector) has no network interface (\(directory) is empty or missing)")
        }
        return try link(named: name, for: selector, netlink: netlink)
    }

    /// Sorted names in a directory; nil when it cannot be read.
    private static func netDirectoryEntries(_ directory: String) -> [String]? {
        (try? FileSystem.list(directory))?.sorted()
    }

    /// Where a symbolic link points, as written; nil when `path` is no link.
    private static func symbolicLinkTarget(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX))
        let count = readlink(path, &buffer, buffer.count)
        guard count > 0 else { return nil }
        return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private static func link(named name: String, for selector: DeviceSelector, netlink: RouteNetlink) throws -> Link {
        guard let link = try netlink.linkIfPresent(named: name) else {
            throw CNIError(.invalidNetworkConfig, "\(selector): no interface \(name) on the host")
        }
        return link
    }

    /// `dddd:bb:dd.f` in hex, the form sysfs uses.
    static func isPCIAddress(_ text: String) -> Bool {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].count == 4, parts[1].count == 2 else { return false }
        let slotAndFunction = parts[2].split(separator: ".", omittingEmptySubsequences: false)
        guard slotAndFunction.count == 2, slotAndFunction[0].count == 2, slotAndFunction[1].count == 1 else {
            return false
        }
        return [parts[0], parts[1], slotAndFunction[0], slotAndFunction[1]].allSatisfy { $0.allSatisfy(\.isHexDigit) }
    }

    /// One path component: nothing from config may walk out of the sysfs directory it names.
    private static func isPlainComponent(_ text: String) -> Bool {
        !text.isEmpty && text != "." && text != ".." && !text.contains("/") && !text.contains("\0")
    }

    private static func isPlainPath(_ path: String) -> Bool {
        !path.contains("\0") && path.split(separator: "/").allSatisfy { $0 != ".." && $0 != "." }
    }
}
