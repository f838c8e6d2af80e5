import CKernels
import Foundation
import Synchronization

/// A pool of worker threads that spin between jobs, so that the ~200 small matrix products of one decoded token
/// each cost about a microsecond to hand out instead of the tens of microseconds a sleeping thread needs to wake.
/// Workers sleep after a while without work; releasing the pool stops its threads. Jobs from several threads run
/// one after another (a job is one matrix product or attention pass), so callers may share a pool: a `Pipeline`
/// used from several threads at once gives each call its lone result. A job must not start another on its pool.
public final class WorkerPool: @unchecked Sendable {
    public let threadCount: Int
    private let shared: Shared
    private let oneJobAtATime = Mutex(())

    /// The processors this process may use: the most threads that help (more only wait for each other: spinning
    /// workers on a shared core turn a one-second job into minutes).
    public static var processorCount: Int { max(1, ProcessInfo.processInfo.activeProcessorCount) }

    /// `threads` counts the calling thread, which works too; nil means one per active processor, and more than
    /// `processorCount` is capped to it.
    public init(threads: Int? = nil) {
        threadCount = min(Self.processorCount, max(1, threads ?? Self.processorCount))
        shared = Shared()
        for _ in 1..<threadCount {
            let thread = Thread { [shared] in shared.workerLoop() }
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    deinit { shared.stop() }

    /// Runs `body(task)` for every task in 0..<tasks across the pool and returns when all are done.
    public func run(tasks: Int, _ body: (Int) -> Void) {
        guard tasks > 1, threadCount > 1 else {
            for task in 0..<tasks { body(task) }
            return
        }
        oneJobAtATime.withLock { _ in
            withoutActuallyEscaping(body) { shared.run(tasks: tasks, workers: threadCount - 1, body: $0) }
        }
    }

    /// Splits 0..<count into contiguous ranges (multiples of `granule` where possible) and runs them in parallel.
    /// Work below `minimumPerThread` units per thread runs on the calling thread alone. The granules are dealt
    /// evenly: 4 ranges per thread used (taken by whichever thread is free), their sizes within one granule of each
    /// other; 1,152 rows of 32 went out as seven ranges of 160 and one of 32, one thread's 640 rows against 512.
    public func forEachRange(count: Int, granule: Int = 1, work: Int, minimumPerThread: Int = 1 << 16,
                             _ body: (Range<Int>) -> Void) {
        let parallelism = min(threadCount, max(1, work / minimumPerThread))
        guard parallelism > 1, count > granule else { return body(0..<count) }
        let granules = (count + granule - 1) / granule
        let chunks = min(parallelism * 4, granules), (each, extra) = granules.quotientAndRemainder(dividingBy: chunks)
        run(tasks: chunks) { index in
            let first = index * each + min(index, extra), end = first + each + (index < extra ? 1 : 0)
            body(first * granule..<min(count, end * granule))
        }
    }
}

/// State the worker threads hold on to (they outlive the pool object by the moment it takes them to notice).
private final class Shared: @unchecked Sendable {
    private let generation = Atomic<Int>(0)
    private let nextTask = Atomic<Int>(0)
    private let acknowledged = Atomic<Int>(0)
    private let sleepers = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    private let condition = NSCondition()
    // Written only between jobs, while every worker waits for the next generation.
    private var taskCount = 0
    private var job: ((Int) -> Void)?
    private let spinLimit = 100_000

    func run(tasks: Int, workers: Int, body: @escaping (Int) -> Void) {
        job = body
        taskCount = tasks
        nextTask.store(0, ordering: .relaxed)
        acknowledged.store(0, ordering: .relaxed)
        generation.add(1, ordering: .sequentiallyConsistent)
        if sleepers.load(ordering: .sequentiallyConsistent) > 0 { wakeAll() }
        drainTasks()
        // Every worker acknowledges each generation, so none can still be inside this job when the next begins.
        while acknowledged.load(ordering: .acquiring) < workers { ck_cpu_relax() }
        job = nil
    }

    func stop() {
        stopping.store(true, ordering: .sequentiallyConsistent)
        wakeAll()
    }

    private func wakeAll() {
        condition.lock()
        condition.broadcast()
        condition.unlock()
    }

    private func drainTasks() {
        let body = job!
        while true {
            let task = nextTask.add(1, ordering: .relaxed).oldValue
            if task >= taskCount { return }
            body(task)
        }
    }

    func workerLoop() {
        var seen = 0
        while true {
            var spins = 0
            while generation.load(ordering: .acquiring) == seen {
                if stopping.load(ordering: .relaxed) { return }
                spins += 1
                if spins < spinLimit {
                    ck_cpu_relax()
                    continue
                }
                condition.lock()
                sleepers.add(1, ordering: .sequentiallyConsistent)
                while generation.load(ordering: .sequentiallyConsistent) == seen,
                      !stopping.load(ordering: .sequentiallyConsistent) {
                    condition.wait()
                }
                sleepers.subtract(1, ordering: .sequentiallyConsistent)
                condition.unlock()
                spins = 0
            }
            if stopping.load(ordering: .relaxed) { return }
            seen += 1
            drainTasks()
            acknowledged.add(1, ordering: .releasing)
        }
    }
}
