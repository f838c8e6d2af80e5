import Foundation
import IdeficsTensors
import Synchronization
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

    /// Every index once, ranges starting on granules, 4 per thread, of whole granules differing by one at most
    /// (the last may end early, with the count).
    func testForEachRangeCoversTheCountOnceInEvenGranules() throws {
        let pool = WorkerPool(threads: 2)
        try XCTSkipIf(pool.threadCount < 2, "one processor: the pool runs every job on its caller's thread")
        for (count, granule) in [(1000, 8), (1152, 32), (4304, 32), (20, 8), (9, 1)] {
            var seen = [Int](repeating: 0, count: count)
            let sizes = Mutex<[Int]>([])
            seen.withUnsafeMutableBufferPointer { buffer in
                pool.forEachRange(count: count, granule: granule, work: 1 << 20) { range in
                    XCTAssert(range.lowerBound % granule == 0, "\(range) starts off a granule")
                    sizes.withLock { $0.append((range.count + granule - 1) / granule) }
                    for i in range { buffer[i] += 1 }
                }
            }
            XCTAssertEqual(seen, Array(repeating: 1, count: count), "\(count) by \(granule)")
            let granules = sizes.withLock { $0 }
            XCTAssertEqual(granules.count, min(8, (count + granule - 1) / granule), "\(count) by \(granule)")
            XCTAssertLessThanOrEqual(granules.max()! - granules.min()!, 1, "\(count) by \(granule): \(granules)")
        }
    }
}
