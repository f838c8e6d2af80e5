import Foundation
import IdeficsTensors
import XCTest

final class WorkerPoolTests: XCTestCase {
    /// Callers on several threads share one pool: each job runs every one of its tasks exactly once, as if it ran
    /// alone (jobs take turns; without that, a second caller's job replaces the first's while its workers run it).
    func testJobsFromSeveralThreadsEachRunEveryTaskOnce() throws {
        let pool = WorkerPool(threads: 2)
        try XCTSkipIf(pool.threadCount < 2, "one processor: the pool runs every job on its caller's thread")
        let (callers, jobs, tasks) = (3, 20_000, 16)
        let counts = (0..<callers).map { _ in UnsafeMutableBufferPointer<Int>.allocate(capacity: tasks) }
        defer { counts.forEach { $0.deallocate() } }
        DispatchQueue.concurrentPerform(iterations: callers) { caller in
            let mine = counts[caller]
            mine.initialize(repeating: 0)
            for _ in 0..<jobs {
                pool.run(tasks: tasks) { task in mine[task] += 1 } // tasks of one job touch distinct slots
            }
        }
        for (caller, count) in counts.enumerated() {
            XCTAssertEqual(Array(count), Array(repeating: jobs, count: tasks), "caller \(caller)")
        }
    }

    func testForEachRangeCoversTheCountOnceInGranules() {
        let pool = WorkerPool(threads: 2)
        var seen = [Int](repeating: 0, count: 1000)
        seen.withUnsafeMutableBufferPointer { buffer in
            pool.forEachRange(count: 1000, granule: 8, work: 1 << 20) { range in
                XCTAssert(range.lowerBound % 8 == 0, "\(range) starts off a granule")
                for i in range { buffer[i] += 1 }
            }
        }
        XCTAssertEqual(seen, Array(repeating: 1, count: 1000))
    }
}
