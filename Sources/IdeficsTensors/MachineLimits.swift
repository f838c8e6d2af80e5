import CKernels
import Foundation

/// This machine's limits, measured in the same run as a benchmark so that its figures can be read as fractions of
/// them: DRAM read bandwidth and the FMA peak of the active kernels, each with all of a pool's threads.
public struct MachineLimits: Sendable {
    /// Bytes per second read from memory (a buffer far larger than the caches), streamed as the products stream their
    /// weights (several rows at a time, prefetched): the rate a memory-bound kernel can reach.
    public var readBandwidth: Double
    /// Float32 multiply-adds counted as two flops, per second, on the kernels in use.
    public var fmaPeak: Double
    /// Flops per second of the bf16 GEMM's instruction, where the active kernels have one
    /// (KernelPath.hasBF16Products): TDPBF16PS on AMX tiles, else vdpbf16ps (a pair of bf16 products and their sum
    /// counted as four flops).
    public var bf16Peak: Double?
    public var threads: Int
    public var kernels: KernelPath

    /// Best of `repeats` passes of each probe; `bytes` is the buffer read (256 MiB per thread by default).
    public static func measure(pool: WorkerPool, bytes: Int? = nil, repeats: Int = 3) -> MachineLimits {
        let threads = pool.threadCount
        let floats = (bytes ?? threads << 28) / MemoryLayout<Float>.size
        let buffer = [Float](repeating: 1, count: floats)
        let perThread = floats / threads
        var bandwidth = 0.0
        buffer.withUnsafeBufferPointer { data in
            for _ in 0..<repeats {
                let start = ContinuousClock.now
                pool.run(tasks: threads) { _ = ck_read_probe(data.baseAddress! + $0 * perThread, perThread) }
                bandwidth = max(bandwidth, Double(perThread * threads * 4) / (ContinuousClock.now - start).seconds)
            }
        }
        func peak(_ probe: @escaping @Sendable (Int) -> Double) -> Double {
            let perIteration = probe(1), iterations = 20_000_000
            var best = 0.0
            for _ in 0..<repeats {
                let start = ContinuousClock.now
                pool.run(tasks: threads) { _ in _ = probe(iterations) }
                best = max(best, Double(threads) * perIteration * Double(iterations) / (ContinuousClock.now - start).seconds)
            }
            return best
        }
        return MachineLimits(readBandwidth: bandwidth, fmaPeak: peak { ck_fma_probe($0) },
                             bf16Peak: KernelPath.hasBF16Products ? peak { ck_bf16_probe($0) } : nil,
                             threads: threads, kernels: .active)
    }
}

extension Duration {
    /// The duration in seconds, as a Double (for rates).
    public var seconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}
