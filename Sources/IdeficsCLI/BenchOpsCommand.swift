import ArgumentParser
import Foundation
import Idefics

/// Each operation a forward pass of idefics2-8b runs, at its shapes, on one thread and on the pool: whether the
/// worker pool's jobs are sized so that more threads beat one (random inputs and weights in memory, no model).
struct BenchOpsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-ops",
        abstract: "Time each operation at idefics2-8b's shapes on 1 thread and on --threads (median of --runs).",
        discussion: "Vision: 4,900 patches of one 980x980 image (width 1152, MLP 4304, 16 heads of 72); prefill: "
            + "335 tokens (width 4096, MLP 14336, 32 query and 8 key/value heads of 128); decode: one token against "
            + "400 cached ones. Products at --matmul-precision (weights BF16), decode also with Q8_0 and Q4_0 "
            + "weights. Prints a Markdown table; a row whose threads are not faster says so.")

    @Option(parsing: .unconditional, help: "Threads of the pool compared with one (default and most: one per processor).")
    var threads: Int?

    @Option(parsing: .unconditional, help: "Runs of each operation per thread count, alternating (1...1000).")
    var runs = 5

    @Option(help: "Precision of the products and many-query attention: f32 or bf16.")
    var matmulPrecision: ProductPrecision = .bfloat16

    func validate() throws {
        try checkOption("threads", threads, 1...4096)
        try checkOption("runs", runs, 1...1000)
    }

    func run() throws {
        Terminal.noteThreadsCapped(threads)
        let pools = (one: WorkerPool(threads: 1), many: WorkerPool(threads: threads))
        let count = pools.many.threadCount
        Terminal.write("kernels \(KernelPath.active.rawValue), products \(matmulPrecision.rawValue), \(runs) runs each\n\n")
        Terminal.write("| operation | shape | 1 thread | \(count) threads | speedup |\n|---|---|---|---|---|\n")
        let operations = operations(preparing: pools.many)
        var slower = 0
        for op in operations {
            var times: (one: [Double], many: [Double]) = ([], [])
            for run in 0...runs { // the first pair warms caches and buffers up and is not counted
                let one = op.time(pools.one), many = op.time(pools.many)
                if run > 0 { times.one.append(one); times.many.append(many) }
            }
            let (one, many) = (median(times.one), median(times.many))
            slower += many < one ? 0 : 1
            Terminal.write(String(format: "| %@ | %@ | %.3f ms | %.3f ms | %.2fx%@ |\n", op.name, op.shape, one * 1e3,
                                  many * 1e3, one / many, many < one ? "" : " (not faster)"))
        }
        Terminal.write("\n\(slower) of \(operations.count) operations not faster on \(count) threads\n")
    }

    private func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

    /// One operation: `body` runs it once on a pool.
    private struct Operation {
        let name, shape: String
        let body: (WorkerPool) -> Void

        func time(_ pool: WorkerPool) -> Double {
            let start = ContinuousClock.now
            body(pool)
            return (ContinuousClock.now - start).seconds
        }
    }

    /// The operations, their inputs and weights made (and quantized) on `pool`.
    private func operations(preparing pool: WorkerPool) -> [Operation] {
        let (patches, prompt, cached) = (4_900, 335, 400)
        var ops = [Operation]()
        func linear(_ name: String, tokens: Int, input: Int, output: Int, format: QuantizedFormat? = nil) {
            var weight = Self.matrix(rows: output, columns: input).multiplied(at: matmulPrecision, pool: pool)
            if let format { weight = weight.quantized(format, pool: pool) }
            let layer = Linear(weight: weight), x = Self.values(tokens * input, seed: 1)
            var (y, scratch) = ([Float](), Linear.Scratch())
            let described = "\(tokens) x \(input) -> \(output)" + (format.map { " \($0.rawValue)" } ?? "")
            ops.append(Operation(name: name, shape: described) { pool in
                layer(x, tokens: tokens, into: &y, scratch: &scratch, pool: pool)
            })
        }
        func attention(_ name: String, queries: Int, slots: Int, heads: Int, kvHeads: Int, dim: Int, causal: Bool) {
            let shape = AttentionShape(headCount: heads, keyValueHeadCount: kvHeads, headDim: dim,
                                       precision: queries < 8 ? .float32 : matmulPrecision)
            let q = Self.values(queries * heads * dim, seed: 2), k = Self.values(slots * kvHeads * dim, seed: 3)
            let v = Self.values(slots * kvHeads * dim, seed: 4)
            let allowed: (Int) -> Range<Int> = { query in 0..<(causal ? slots - queries + query + 1 : slots) }
            var out = [Float]()
            let described = "\(queries) queries x \(slots) slots, \(heads) / \(kvHeads) heads of \(dim)"
            ops.append(Operation(name: name, shape: described) { pool in
                attend(queries: q, keys: k, values: v, shape: shape, queryCount: queries, allowedSlots: allowed,
                       into: &out, pool: pool)
            })
        }
        func elementwise(_ name: String, rows: Int, width: Int, _ body: @escaping (inout [Float], [Float], WorkerPool) -> Void) {
            var x = Self.values(rows * width, seed: 5)
            let other = Self.values(rows * width, seed: 6)
            ops.append(Operation(name: name, shape: "\(rows) x \(width)") { pool in body(&x, other, pool) })
        }
        let (ones1152, zeros1152, ones4096) = ([Float](repeating: 1, count: 1152), [Float](repeating: 0, count: 1152),
                                               [Float](repeating: 1, count: 4096))
        var normed = [Float]()

        linear("vision q, k, v, o (each)", tokens: patches, input: 1152, output: 1152)
        linear("vision fc1", tokens: patches, input: 1152, output: 4304)
        linear("vision fc2", tokens: patches, input: 4304, output: 1152)
        attention("vision attention", queries: patches, slots: patches, heads: 16, kvHeads: 16, dim: 72, causal: false)
        elementwise("vision layer norm", rows: patches, width: 1152) { x, _, pool in
            Ops.layerNorm(x, weight: ones1152, bias: zeros1152, eps: 1e-6, into: &normed, pool: pool)
        }
        elementwise("vision GELU (tanh)", rows: patches, width: 4304) { x, _, pool in Ops.geluTanh(&x, pool: pool) }
        elementwise("residual add", rows: patches, width: 1152) { x, y, pool in Ops.add(&x, y, pool: pool) }
        linear("prefill gate, up (each)", tokens: prompt, input: 4096, output: 14336)
        linear("prefill down", tokens: prompt, input: 14336, output: 4096)
        attention("prefill attention", queries: prompt, slots: prompt, heads: 32, kvHeads: 8, dim: 128, causal: true)
        elementwise("prefill RMS norm", rows: prompt, width: 4096) { x, _, pool in
            Ops.rmsNorm(x, weight: ones4096, eps: 1e-5, into: &normed, pool: pool)
        }
        elementwise("prefill SiLU x up", rows: prompt, width: 14336) { x, y, pool in Ops.siluMultiply(&x, y, pool: pool) }
        for format in [nil, QuantizedFormat.q8, .q4] {
            linear("decode gate, up (each)", tokens: 1, input: 4096, output: 14336, format: format)
        }
        attention("decode attention", queries: 1, slots: cached, heads: 32, kvHeads: 8, dim: 128, causal: true)
        elementwise("decode RMS norm", rows: 1, width: 4096) { x, _, pool in
            Ops.rmsNorm(x, weight: ones4096, eps: 1e-5, into: &normed, pool: pool)
        }
        let stored = Self.matrix(rows: 14336, columns: 4096, dtype: .f32)
        ops.append(Operation(name: "load: F32 matrix to BF16", shape: "14336 x 4096") { pool in
            _ = stored.roundedToBF16(pool: pool)
        })
        return ops
    }

    /// `count` values in [-0.5, 0.5) from a fixed linear congruential sequence.
    private static func values(_ count: Int, seed: UInt64) -> [Float] {
        var state = seed &* 0x9E37_79B9_7F4A_7C15
        return (0..<count).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float(state >> 40) / Float(1 << 24) - 0.5
        }
    }

    /// Memory behind a benchmark's matrix.
    private final class Storage {
        let bytes: UnsafeMutableRawPointer
        init(byteCount: Int) { bytes = .allocate(byteCount: byteCount, alignment: 64) }
        deinit { bytes.deallocate() }
    }

    /// A random matrix [rows, columns] of `dtype`: F32, or BF16 (the top half of each float's bits).
    private static func matrix(rows: Int, columns: Int, dtype: DType = .bf16) -> WeightTensor {
        let floats = values(rows * columns, seed: UInt64(rows * 31 + columns))
        let storage = Storage(byteCount: floats.count * dtype.byteSize)
        for (i, value) in floats.enumerated() {
            if dtype == .f32 {
                storage.bytes.storeBytes(of: value, toByteOffset: 4 * i, as: Float.self)
            } else {
                storage.bytes.storeBytes(of: UInt16(value.bitPattern >> 16), toByteOffset: 2 * i, as: UInt16.self)
            }
        }
        return WeightTensor(name: "bench", dtype: dtype, shape: [rows, columns], data: storage.bytes, owner: storage)
    }
}
