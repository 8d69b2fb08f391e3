import Foundation
import IPAddressing
import NetNS
import PierTestSupport
import Testing

@testable import Netlink

/// The packet socket that announces a container's addresses is closed without the caller
/// waiting for the kernel's release (an RCU grace period per packet socket): a detached
/// grandchild drops the last reference. These check that it really lets go, and that the
/// frames went out before the sender was gone.
@Suite struct LinkLayerSenderTests {
    /// Waits up to `seconds` for `descriptor` to be readable or hung up; true if it was.
    private func readable(_ descriptor: Int32, within seconds: Int32) -> Bool {
        var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        return poll(&entry, 1, seconds * 1000) == 1
    }

    /// The write end of a pipe, handed over: its reader sees end-of-file, so the grandchild
    /// holding it exited after this process let go (it did not wait forever, nor keep it).
    @Test func aDetachedCloseReleasesTheDescriptor() throws {
        var ends: [Int32] = [0, 0]
        try #require(pipe(&ends) == 0)
        defer { close(ends[0]) }
        #expect(LinkLayerSender.closeDetached(ends[1]), "a grandchild took the release over")
        let released = readable(ends[0], within: 5)
        #expect(released, "the handed-over write end was released")
        var byte: UInt8 = 0
        if released { #expect(read(ends[0], &byte, 1) == 0, "end-of-file: no writer is left anywhere") }
    }

    /// In a test host: the frames leave through the link before the sender is dropped, the
    /// socket leaves this process at once, and the kernel releases it soon after.
    @Test(.enabled(if: isRoot, Comment(rawValue: needsRootReason)))
    func framesGoOutAndTheSocketIsReleased() throws {
        try withTestHosts(1) { hosts in
            let host = hosts[0]
            try host.mustRun(["ip", "link", "add", "an0", "type", "veth", "peer", "name", "an1"])
            // No link-local address: no DAD or MLD of its own on the link to count.
            for name in ["an0", "an1"] {
                try host.mustRun(["ip", "link", "set", name, "addrgenmode", "none"])
                try host.mustRun(["ip", "link", "set", name, "up"])
            }
            let index = try #require(try host.link("an0")?["ifindex"] as? Int)
            let namespace = try NetworkNamespace.open(path: host.path)
            let before = try transmitted(host)
            var inode: UInt64 = 0
            do {
                let sender = try namespace.perform { () throws(NetlinkError) in try LinkLayerSender() }
                var status = stat()
                try #require(fstat(sender.descriptor, &status) == 0)
                inode = UInt64(status.st_ino)
                try #require(try socketsOfThisProcess().contains(inode))
                try sender.announce(
                    [
                        NeighbourAnnouncement(address: try #require(IPAddress("10.77.0.5")), mac: .randomLocal()),
                        NeighbourAnnouncement(address: try #require(IPAddress("fd77::5")), mac: .randomLocal()),
                    ], index: Int32(index))
            }
            let after = try transmitted(host)
            #expect(after == before + 2, "both frames went out before the sender was dropped (\(before) → \(after))")
            #expect(!(try socketsOfThisProcess().contains(inode)), "the socket is no longer this process's")
            // /proc/net/packet (read inside the host) lists the namespace's packet sockets by inode.
            let released = eventually(within: 5, since: Date()) {
                guard let table = try? host.mustRun(["cat", "/proc/net/packet"]).stdout else { return false }
                return !table.split(separator: "\n").contains { $0.split(separator: " ").last == "\(inode)"[...] }
            }
            #expect(released, "the kernel released the packet socket")
        }
    }

    /// Inodes of the sockets open in this process (`socket:[N]` links in /proc/self/fd).
    private func socketsOfThisProcess() throws -> Set<UInt64> {
        var inodes: Set<UInt64> = []
        for entry in try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
            guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(entry)"),
                target.hasPrefix("socket:[")
            else { continue }
            if let inode = UInt64(target.dropFirst(8).dropLast()) { inodes.insert(inode) }
        }
        return inodes
    }

    private func transmitted(_ host: TestHost) throws -> Int {
        let link = try #require(try host.ipJSON(["-s", "link", "show", "an0"]).first)
        let stats = try #require(link["stats64"] as? [String: Any])
        return try #require((stats["tx"] as? [String: Any])?["packets"] as? Int)
    }
}
