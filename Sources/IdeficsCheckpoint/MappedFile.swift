import Foundation
import IdeficsTensors
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only memory mapping of a whole file: pages are read from disk when first touched and can be dropped by
/// the kernel under memory pressure, so an 8B checkpoint never needs its size in anonymous memory.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let bytes: UnsafeRawPointer
    public let count: Int

    public init(path: String) throws {
        self.path = path
        // O_NONBLOCK: opening a pipe for reading would otherwise wait forever for a writer (it is refused below).
        let fd = open(path, O_RDONLY | O_NONBLOCK)
        guard fd >= 0 else {
            let reason = String(cString: strerror(errno))
            throw errno == ENOENT ? CheckpointError.missingFile(path: path, reason: reason)
                : CheckpointError.unreadable(path: path, reason: reason)
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw CheckpointError.unreadable(path: path, reason: String(cString: strerror(errno)))
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw CheckpointError.unreadable(path: path, reason: info.st_mode & S_IFMT == S_IFDIR ? "is a folder, not a file"
                                             : "is not a regular file (a pipe or a device)")
        }
        count = Int(info.st_size)
        guard count > 0 else {
            bytes = UnsafeRawPointer(UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 1))
            return
        }
        guard let address = mmap(nil, count, PROT_READ, MAP_PRIVATE, fd, 0), address != MAP_FAILED else {
            throw CheckpointError.unreadable(path: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        bytes = UnsafeRawPointer(address)
    }

    deinit {
        if count > 0 {
            munmap(UnsafeMutableRawPointer(mutating: bytes), count)
        } else {
            UnsafeMutableRawPointer(mutating: bytes).deallocate()
        }
    }
}

extension MappedFile: ReleasableWeightStorage {
    /// Drops the whole pages inside `range` from this process (a quantized copy replaced them); they are read from
    /// the file again only if touched.
    public func release(_ range: UnsafeRawBufferPointer) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = (Int(bitPattern: range.baseAddress) + page - 1) / page * page
        let end = (Int(bitPattern: range.baseAddress) + range.count) / page * page
        guard end > start, let address = UnsafeMutableRawPointer(bitPattern: start) else { return }
        madvise(address, end - start, MADV_DONTNEED)
    }
}
