import Foundation
import IdeficsCheckpoint
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// A mapped weight file maps what a model reads at load (`populate`), less what it gave back (`release`, after
/// quantizing or rounding a matrix): seen in the mapping's resident bytes, the Rss of its /proc/self/smaps entry.
final class MappedFileTests: XCTestCase {
    func testPopulateMapsKeptPagesAndLeavesReleasedOnes() throws {
        #if os(Linux)
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let url = try temporaryDirectory().appendingPathComponent("weights.bin")
        try Data((0..<512 * page).map { UInt8(truncatingIfNeeded: $0 &* 31) }).write(to: url)
        let file = try MappedFile(path: url.path)
        XCTAssertEqual(try residentBytes(of: file), 0, "nothing read yet")
        // Bytes 10 past page 63 to 10 past page 448: the whole pages 64..<448 go back.
        file.release(UnsafeRawBufferPointer(start: file.bytes + 63 * page + 10, count: 385 * page))
        XCTAssertEqual(file.keptRanges, [0..<64 * page, 448 * page..<512 * page])
        guard populateReadWorks(page: page) else { throw XCTSkip("no MADV_POPULATE_READ (Linux before 5.14)") }
        file.populate()
        // Every kept page. (Released ones may be mapped with them: a fault maps whole what the page cache holds
        // around it, Linux's fault-around and large folios; here this 2 MB file was one folio, all of it mapped.)
        XCTAssertGreaterThanOrEqual(try residentBytes(of: file), 128 * page)
        XCTAssertEqual(file.bytes.load(fromByteOffset: 100 * page + 3, as: UInt8.self),
                       UInt8(truncatingIfNeeded: (100 * page + 3) &* 31), "a released page reads from the file again")
        #else
        throw XCTSkip("resident bytes are read from Linux's /proc/self/smaps")
        #endif
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
