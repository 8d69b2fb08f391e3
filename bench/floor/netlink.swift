// A Swift program doing the least a plugin's ADD does: read the config from stdin, open an
// rtnetlink socket, dump the links, write a JSON answer. Its peak RSS is the floor under ADD.
import Glibc

var input: [UInt8] = []
var chunk = [UInt8](repeating: 0, count: 4096)
while true {
    let count = read(0, &chunk, chunk.count)
    if count <= 0 { break }
    input += chunk[0..<count]
}
let fd = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)  // NETLINK_ROUTE
guard fd >= 0 else { fatalError("socket") }
// struct nlmsghdr (16 bytes) + struct ifinfomsg (16 bytes): RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP.
var request = [UInt8](repeating: 0, count: 32)
withUnsafeBytes(of: UInt32(32).littleEndian) { request.replaceSubrange(0..<4, with: $0) }
withUnsafeBytes(of: UInt16(18).littleEndian) { request.replaceSubrange(4..<6, with: $0) }
withUnsafeBytes(of: UInt16(0x301).littleEndian) { request.replaceSubrange(6..<8, with: $0) }
request[16] = UInt8(AF_UNSPEC)
guard send(fd, request, request.count, 0) == request.count else { fatalError("send") }
var links = 0
var buffer = [UInt8](repeating: 0, count: 32768)
receive: while true {
    let count = recv(fd, &buffer, buffer.count, 0)
    guard count > 0 else { break }
    var offset = 0
    while offset + 16 <= count {
        let length = Int(buffer[offset]) | Int(buffer[offset + 1]) << 8 | Int(buffer[offset + 2]) << 16
        let type = Int(buffer[offset + 4]) | Int(buffer[offset + 5]) << 8
        if type == 3 { break receive }  // NLMSG_DONE
        if type == 16 { links += 1 }  // RTM_NEWLINK
        offset += (length + 3) & ~3
        if length == 0 { break }
    }
}
close(fd)
print(#"{"cniVersion":"1.1.0","links":\#(links),"configBytes":\#(input.count)}"#)
