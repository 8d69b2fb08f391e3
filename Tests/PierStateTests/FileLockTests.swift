import Glibc
import PierState
import Testing

/// The one lock of every store: two instances on one file exclude each other, a held lock is given up
/// by `release()` or by dropping the object, and an inheritable one stays open across exec.
@Suite struct FileLockTests {
    @Test func instancesExcludeEachOtherUntilReleased() throws {
        let scratch = try ScratchDirectory()
        let path = scratch.path + "/lock"
        let holder = try FileLock(path: path)
        try holder.lock()
        let other = try FileLock(path: path)
        #expect(!other.tryLock())
        holder.release()
        #expect(other.tryLock())
        other.release()

        var dropped: FileLock? = try FileLock(path: path)
        #expect(dropped?.tryLock() == true)
        #expect(!(try FileLock(path: path)).tryLock())
        dropped = nil
        let ran = try FileLock(path: path).withLock { () throws(FileSystemError) in true }
        #expect(ran)
    }

    @Test func onlyAnInheritableLockStaysOpenAcrossExec() throws {
        let scratch = try ScratchDirectory()
        let inherited = try FileLock(path: scratch.path + "/inherited", inheritable: true)
        let private_ = try FileLock(path: scratch.path + "/private")
        func closesOnExec(_ path: String) -> Bool {
            let target = scratch.path + "/" + path
            // The descriptor open on the file, found by what /proc/self/fd points at.
            for fd in 0..<Int32(1024) {
                var buffer = [CChar](repeating: 0, count: 4096)
                let length = readlink("/proc/self/fd/\(fd)", &buffer, buffer.count - 1)
                guard length > 0, String(cString: buffer) == target else { continue }
                return fcntl(fd, F_GETFD) & FD_CLOEXEC != 0
            }
            return false
        }
        #expect(!closesOnExec("inherited"))
        #expect(closesOnExec("private"))
        withExtendedLifetime((inherited, private_)) {}
        #expect(throws: FileSystemError.self) { try FileLock(path: scratch.path + "/missing/lock") }
    }
}
