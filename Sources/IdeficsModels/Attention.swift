import Foundation
import IdeficsTensors

/// Scaled dot-product attention of new queries against cached keys and values, with grouped-query heads.
/// Query row t sees the slots `allowedSlots(t)` returns (a causal window, or everything).
public struct AttentionShape: Sendable {
    public let headCount: Int
    public let keyValueHeadCount: Int
    public let headDim: Int
    /// The precision of the attention's projections: at bf16, many-query attention runs as torch's bf16 flash
    /// attention does (queries, keys, values and softmax weights rounded to bf16) on AMX tiles where the CPU has them.
    public let precision: ProductPrecision

    public init(headCount: Int, keyValueHeadCount: Int, headDim: Int, precision: ProductPrecision) {
        (self.headCount, self.keyValueHeadCount, self.headDim, self.precision) = (headCount, keyValueHeadCount, headDim, precision)
    }
}

/// Queries per task of the many-query path: each task packs the keys and values of its head once per tile and
/// shares them among its queries (512: the queries' packed copy and accumulators, ~300 KB at 72 dims, stay in L2;
/// 256 and 1024 measured no better).
private let queryBlock = 512

func attend(queries: [Float], keys: [Float], values: [Float], shape: AttentionShape, queryCount: Int,
            allowedSlots: (Int) -> Range<Int>, pool: WorkerPool) -> [Float] {
    var output = [Float]()
    attend(queries: queries, keys: keys, values: values, shape: shape, queryCount: queryCount,
           allowedSlots: allowedSlots, into: &output, pool: pool)
    return output
}

/// `attend` into `output` (its storage kept when it is large enough).
public func attend(queries: [Float], keys: [Float], values: [Float], shape: AttentionShape, queryCount: Int,
            allowedSlots: (Int) -> Range<Int>, into output: inout [Float], pool: WorkerPool) {
    output.prepare(count: queryCount * shape.headCount * shape.headDim)
    queries.withUnsafeBufferPointer { q in
        output.withUnsafeMutableBufferPointer { out in
            attend(queryRows: q.baseAddress!, keys: keys, values: values, shape: shape, queryCount: queryCount,
                   allowedSlots: allowedSlots, into: out.baseAddress!, pool: pool)
        }
    }
}

/// Bidirectional attention within each of `segments` (consecutive row ranges from 0: images encoded together), each
/// computed exactly as it would be alone.
func attend(queries: [Float], keys: [Float], values: [Float], shape: AttentionShape, segments: [Range<Int>],
            into output: inout [Float], pool: WorkerPool) {
    let width = shape.headCount * shape.headDim
    output.prepare(count: (segments.last?.upperBound ?? 0) * width)
    queries.withUnsafeBufferPointer { q in
        output.withUnsafeMutableBufferPointer { out in
            for segment in segments {
                attend(queryRows: q.baseAddress! + segment.lowerBound * width, keys: keys, values: values, shape: shape,
                       queryCount: segment.count, allowedSlots: { _ in segment },
                       into: out.baseAddress! + segment.lowerBound * width, pool: pool)
            }
        }
    }
}

/// Rows [queryCount, heads * headDim] of queries at `q` against every slot of `keys` and `values`, into the rows
/// at `out`; the kernels write every output value. (Labelled `queryRows:` so that an array never converts to the
/// pointer by accident.)
func attend(queryRows q: UnsafePointer<Float>, keys: [Float], values: [Float], shape: AttentionShape, queryCount: Int,
            allowedSlots: (Int) -> Range<Int>, into out: UnsafeMutablePointer<Float>, pool: WorkerPool) {
    let kvWidth = shape.keyValueHeadCount * shape.headDim
    let slotCount = keys.count / kvWidth
    keys.withUnsafeBufferPointer { k in
        values.withUnsafeBufferPointer { v in
            let operands = AttentionOperands(q: q, k: k.baseAddress!, v: v.baseAddress!, out: out, shape: shape,
                                             slotCount: slotCount)
            if queryCount < 8 {
                pool.forEachRange(count: shape.keyValueHeadCount * queryCount,
                                  work: shape.headCount * queryCount * slotCount * shape.headDim * 2,
                                  minimumPerThread: 1 << 14) { items in
                    for item in items { operands.attendGroup(item, allowedSlots: allowedSlots) }
                }
            } else {
                let slots = (0..<queryCount).map(allowedSlots)
                let lower = slots.map { Int32($0.lowerBound) }, upper = slots.map { Int32($0.upperBound) }
                // With bf16 products a head's queries go in one task: its keys and values are rounded once.
                let perTask = shape.precision == .bfloat16 && KernelPath.hasBF16Products ? queryCount : queryBlock
                let blocks = (queryCount + perTask - 1) / perTask
                lower.withUnsafeBufferPointer { lower in
                    upper.withUnsafeBufferPointer { upper in
                        pool.run(tasks: shape.headCount * blocks) { task in
                            let (spread, block) = (task / blocks, task % blocks)
                            // Tasks taken together half the heads apart: adjacent heads share the lines at the
                            // edges of their columns in every output row.
                            let half = (shape.headCount + 1) / 2
                            let head = spread % 2 * half + spread / 2
                            let queries = block * perTask..<min(queryCount, (block + 1) * perTask)
                            operands.attendTiled(head: head, queries: queries, lower: lower.baseAddress!,
                                                 upper: upper.baseAddress!)
                        }
                    }
                }
            }
        }
    }
}

private struct AttentionOperands {
    let q, k, v: UnsafePointer<Float>
    let out: UnsafeMutablePointer<Float>
    let shape: AttentionShape
    let slotCount: Int

    var dim: Int { shape.headDim }
    var qWidth: Int { shape.headCount * dim }
    var kvWidth: Int { shape.keyValueHeadCount * dim }
    var scale: Float { 1 / Float(dim).squareRoot() }
    func kvOffset(_ head: Int) -> Int { head / (shape.headCount / shape.keyValueHeadCount) * dim }

    /// The query heads of one key/value head for one query row (decoding): keys and values read once for the group.
    func attendGroup(_ item: Int, allowedSlots: (Int) -> Range<Int>) {
        let (t, group) = (item / shape.keyValueHeadCount, item % shape.keyValueHeadCount)
        let heads = shape.headCount / shape.keyValueHeadCount
        let first = t * qWidth + group * heads * dim
        Vector.attention(q + first, heads: heads, ldq: dim, keys: k + group * dim, values: v + group * dim, ldkv: kvWidth,
                         depth: dim, scale: scale, slots: allowedSlots(t), into: out + first, ldo: dim)
    }

    /// A block of queries of one head, tiled over the slots with an online softmax (prefill, vision, perceiver).
    func attendTiled(head: Int, queries: Range<Int>, lower: UnsafePointer<Int32>, upper: UnsafePointer<Int32>) {
        let first = queries.lowerBound
        Vector.attention(q + first * qWidth + head * dim, queries: queries.count, ldq: qWidth, keys: k + kvOffset(head),
                         values: v + kvOffset(head), ldkv: kvWidth, depth: dim, scale: scale, lower: lower + first,
                         upper: upper + first, into: out + first * qWidth + head * dim, ldo: qWidth,
                         precision: shape.precision)
    }
}
