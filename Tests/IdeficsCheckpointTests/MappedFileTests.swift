import Foundation
import IdeficsCheckpoint
import IdeficsTensors
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// A mapped weight file maps what a model reads at load (`populate`: mapped, then a byte of each page read), less
/// what it gave back (`release`, after quantizing or rounding a matrix): seen in the mapping's resident bytes, the Rss
/// of its /proc/self/smaps entry.
final class MappedFileTests: XCTestCase {
    func testPopulateMapsKeptPagesAndLeavesReleasedOnes() throws {
        #if os(Linux)
        let (page, megabyte) = (Int(sysconf(Int32(_SC_PAGESIZE))), 1 << 20)
        let file = try mappedFile(bytes: 8 * megabyte, pattern: 31)
        XCTAssertEqual(try residentBytes(of: file), 0, "nothing read yet")
        // From 10 bytes before the second megabyte to 10 bytes into the eighth: the whole pages of megabytes 1..<7
        // go back, the first and the last megabyte are kept.
        file.release(UnsafeRawBufferPointer(start: file.bytes + megabyte - page + 10, count: 6 * megabyte + page))
        XCTAssertEqual(file.keptRanges, [0..<megabyte, 7 * megabyte..<8 * megabyte])
        guard populateReadWorks(page: page) else { throw XCTSkip("no MADV_POPULATE_READ (Linux before 5.14)") }
        file.populate(pool: WorkerPool(threads: 2)) // reading a byte of each kept page as well
        // Both kept megabytes, and of the released ones at most the rest of the two 2 MB blocks the kept ones lie in:
        // a fault maps whole what the page cache holds around it (Linux's fault-around, large folios up to 2 MB,
        // naturally aligned), so megabytes 2..<6 stay unmapped.
        let resident = try residentBytes(of: file)
        XCTAssertGreaterThanOrEqual(resident, 2 * megabyte)
        XCTAssertLessThanOrEqual(resident, 4 * megabyte)
        #else
        throw XCTSkip("resident bytes are read from Linux's /proc/self/smaps")
        #endif
    }

    /// `--mlock`: the kept pages are read and locked (the process's VmLck grows by them), the released ones are not.
    /// Two megabytes: within the 8 MiB locked-memory limit of a process without CAP_IPC_LOCK.
    func testLockInMemoryLocksTheKeptPages() throws {
        #if os(Linux)
        let (page, megabyte) = (Int(sysconf(Int32(_SC_PAGESIZE))), 1 << 20)
        let file = try mappedFile(bytes: 8 * megabyte, pattern: 7)
        file.release(UnsafeRawBufferPointer(start: file.bytes + megabyte, count: 6 * megabyte))
        let before = try lockedBytes()
        try file.lockInMemory()
        XCTAssertEqual(try lockedBytes() - before, 2 * megabyte,
                       "the first and the last megabyte, locked pages being resident")
        XCTAssertEqual(file.bytes.load(fromByteOffset: 7 * megabyte + page + 3, as: UInt8.self),
                       UInt8(truncatingIfNeeded: (7 * megabyte + page + 3) &* 7))
        #else
        throw XCTSkip("locked bytes are read from Linux's /proc/self/status")
        #endif
    }

    /// A new file of `bytes` bytes, byte i being i * pattern (mod 256), mapped.
    private func mappedFile(bytes: Int, pattern: Int) throws -> MappedFile {
        let url = try temporaryDirectory().appendingPathComponent("weights.bin")
        try Data((0..<bytes).map { UInt8(truncatingIfNeeded: $0 &* pattern) }).write(to: url)
        return try MappedFile(path: url.path)
    }

    /// The VmLck line of /proc/self/status.
    private func lockedBytes() throws -> Int {
        let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8).split(separator: "\n")
        let line = try XCTUnwrap(status.first { $0.hasPrefix("VmLck:") })
        return try XCTUnwrap(Int(line.split(separator: " ", omittingEmptySubsequences: true)[1])) * 1024
    }

    #if os(Linux)
    /// Whether this kernel knows MADV_POPULATE_READ (22), tried on a page of its own.
    private func populateReadWorks(page: Int) -> Bool {
        guard let area = mmap(nil, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              area != MAP_FAILED else { return false }
        defer { munmap(area, page) }
        return madvise(area, page, 22) == 0
    }
    #endif

    /// The Rss line of the smaps entry that starts at the mapping's address.
    private func residentBytes(of file: MappedFile) throws -> Int {
        let handle = try XCTUnwrap(FileHandle(forReadingAtPath: "/proc/self/smaps")) // read to its end: its size reads 0
        let smaps = String(decoding: handle.readDataToEndOfFile(), as: UTF8.self).split(separator: "\n")
        let start = String(UInt(bitPattern: file.bytes), radix: 16) + "-"
        let entry = try XCTUnwrap(smaps.firstIndex { $0.hasPrefix(start) }, "no smaps entry for the mapping")
        let rss = try XCTUnwrap(smaps[entry...].first { $0.hasPrefix("Rss:") })
        let kilobytes = try XCTUnwrap(Int(rss.split(separator: " ")[1]))
        return kilobytes * 1024
    }
}
