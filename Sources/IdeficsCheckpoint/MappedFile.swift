import Foundation
import CKernels
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
    /// Page-aligned byte ranges given back by `release`, which `populate` leaves alone.
    private var released: [Range<Int>] = []
    private let lock = NSLock()

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
        let base = Int(bitPattern: bytes)
        lock.withLock { released.append(start - base..<end - base) }
    }

    /// The byte ranges this process still reads (the file less what `release` gave back), in file order.
    public var keptRanges: [Range<Int>] {
        var kept: [Range<Int>] = [], from = 0
        for range in lock.withLock({ released }).sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if range.lowerBound > from { kept.append(from..<range.lowerBound) }
            from = max(from, range.upperBound)
        }
        if count > from { kept.append(from..<count) }
        return kept
    }

    /// Locks the kept pages in memory (mlock, llama.cpp's `--mlock`): read now where the page cache lacks them, then
    /// never evicted while the file is mapped, however much other processes read meanwhile (after a 14.5 GB file had
    /// filled the page cache, idefics2-8b on 24 GB once prefilled at a third of its rate, its language model's weights
    /// evidently evicted during the image encoding and read from disk again). Refused past the locked-memory limit
    /// (RLIMIT_MEMLOCK) of a process without CAP_IPC_LOCK: the error says the limit and how to raise it.
    public func lockInMemory() throws {
        for range in keptRanges where mlock(bytes + range.lowerBound, range.count) != 0 {
            let reason = String(cString: strerror(errno))
            var limit = rlimit()
            #if os(Linux)
            let known = getrlimit(__rlimit_resource_t(__RLIMIT_MEMLOCK.rawValue), &limit) == 0
            #else
            let known = getrlimit(RLIMIT_MEMLOCK, &limit) == 0
            #endif
            let cap = !known ? "unknown" : limit.rlim_cur >= rlim_t(Int64.max) ? "unlimited"
                : "\(limit.rlim_cur / 1024) KiB"
            throw CheckpointError.cannotLock(path: path, reason: "mlock of \(range.count) bytes failed (\(reason)); "
                + "the locked-memory limit is \(cap): raise it (ulimit -l, a container's --ulimit memlock, systemd's "
                + "LimitMEMLOCK) or run with CAP_IPC_LOCK")
        }
    }

    /// Maps the kept pages into this process now (reading from disk what the page cache lacks), as llama.cpp
    /// populates its mapping: otherwise the first forward pass takes a fault per page of the weights it reads (the
    /// language model's 14 GB only after the image is encoded: minutes apart, time enough for the kernel to evict
    /// them). Linux 5.14's MADV_POPULATE_READ; before it, read-ahead (MADV_WILLNEED); elsewhere nothing. Then reads a
    /// byte of every page across `pool`: in a virtual machine the first read of a page just filled from disk can
    /// cost the guest ~1 us (the host maps it then), 2.5-4 s for the 16.8 GB of idefics2-8b on one thread here, 1.8 s
    /// on two, 0.07 s once read, which the first prefill after a cold load paid otherwise, running at half its rate.
    public func populate(pool: WorkerPool) {
        #if os(Linux)
        let populateRead: Int32 = 22 // MADV_POPULATE_READ, absent from older headers
        for range in keptRanges {
            let address = UnsafeMutableRawPointer(mutating: bytes + range.lowerBound)
            if madvise(address, range.count, populateRead) != 0 { madvise(address, range.count, MADV_WILLNEED) }
        }
        #endif
        let chunk = 1 << 21
        for range in keptRanges {
            pool.forEachRange(count: (range.count + chunk - 1) / chunk, work: range.count / 4096) { chunks in
                let start = range.lowerBound + chunks.lowerBound * chunk
                _ = ck_touch_pages(bytes + start, min(range.upperBound, range.lowerBound + chunks.upperBound * chunk) - start)
            }
        }
    }
}
