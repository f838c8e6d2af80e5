@testable import IdeficsCheckpoint
import XCTest

/// The memory a process may fill, as its control group caps it.
final class MemoryLimitTests: XCTestCase {
    func testLimitFilesOfV1AndV2Groups() {
        let v1 = "12:pids:/docker/abc\n4:cpu,memory:/docker/abc\n1:name=systemd:/docker/abc\n"
        XCTAssertEqual(MemoryLimit.limitFiles(procSelfCgroup: v1),
                       ["/sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes"])
        XCTAssertEqual(MemoryLimit.limitFiles(procSelfCgroup: "0::/\n"), ["/sys/fs/cgroup/memory.max"])
        XCTAssertEqual(MemoryLimit.limitFiles(procSelfCgroup: "0::/user.slice/app.service\n", root: "/r"),
                       ["/r/user.slice/app.service/memory.max"])
        XCTAssertEqual(MemoryLimit.limitFiles(procSelfCgroup: ""), [])
    }

    func testLimitValues() {
        XCTAssertEqual(MemoryLimit.limit(fromFile: "8589934592\n"), 8 << 30)
        XCTAssertNil(MemoryLimit.limit(fromFile: "max\n"), "v2: no limit")
        XCTAssertNil(MemoryLimit.limit(fromFile: "9223372036854771712\n"), "v1: no limit")
        XCTAssertNil(MemoryLimit.limit(fromFile: ""))
    }

    /// This process's limit: positive and at most the machine's memory.
    func testThisProcessHasALimitWithinPhysicalMemory() {
        let physical = Int(sysconf(Int32(_SC_PHYS_PAGES))) * Int(sysconf(Int32(_SC_PAGESIZE)))
        XCTAssertGreaterThan(MemoryLimit.bytes(), 0)
        XCTAssertLessThanOrEqual(MemoryLimit.bytes(), physical)
    }
}
