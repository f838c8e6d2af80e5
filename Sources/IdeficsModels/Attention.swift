import Foundation
import IdeficsTensors

/// Scaled dot-product attention of new queries against cached keys and values, with grouped-query heads.
/// Query row t sees the slots `allowedSlots(t)` returns (a causal window, or everything).
struct AttentionShape {
    let headCount: Int
    let keyValueHeadCount: Int
    let headDim: Int
    /// The precision of the attention's projections: at bf16, many-query attention runs as torch's bf16 flash
    /// attention does (queries, keys, values and softmax weights rounded to bf16) on AMX tiles where the CPU has them.
    let precision: ProductPrecision
}

/// Queries per task of the many-query path: each task packs the keys and values of its head once per tile and
/// shares them among its queries (512: the queries' packed copy and accumulators, ~300 KB at 72 dims, stay in L2;
/// 256 and 1024 measured no better).
private let queryBlock = 512

func attend(queries: [Float], keys: [Float], values: [Float], shape: AttentionShape, queryCount: Int,
            allowedSlots: (Int) -> Range<Int>, pool: WorkerPool) -> [Float] {
    let kvWidth = shape.keyValueHeadCount * shape.headDim
    let slotCount = keys.count / kvWidth
    var output = [Float](repeating: 0, count: queryCount * shape.headCount * shape.headDim)
    queries.withUnsafeBufferPointer { q in
        keys.withUnsafeBufferPointer { k in
            values.withUnsafeBufferPointer { v in
                output.withUnsafeMutableBufferPointer { out in
                    let operands = AttentionOperands(q: q.baseAddress!, k: k.baseAddress!, v: v.baseAddress!,
                                                     out: out.baseAddress!, shape: shape, slotCount: slotCount)
                    if queryCount < 8 {
                        pool.forEachRange(count: shape.headCount * queryCount,
                                          work: shape.headCount * queryCount * slotCount * shape.headDim * 2,
                                          minimumPerThread: 1 << 14) { items in
                            operands.attendEach(items, queryCount: queryCount, allowedSlots: allowedSlots)
                        }
                    } else {
                        let slots = (0..<queryCount).map(allowedSlots)
                        let lower = slots.map { Int32($0.lowerBound) }, upper = slots.map { Int32($0.upperBound) }
                        // On AMX tiles a head's queries go in one task: its keys and values are packed once.
                        let perTask = shape.precision == .bfloat16 && KernelPath.active == .amx ? queryCount : queryBlock
                        let blocks = (queryCount + perTask - 1) / perTask
                        lower.withUnsafeBufferPointer { lower in
                            upper.withUnsafeBufferPointer { upper in
                                pool.run(tasks: shape.headCount * blocks) { task in
                                    let (head, block) = (task / blocks, task % blocks)
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
    }
    return output
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

    /// One (query, head) at a time: dot products and weighted sums over the allowed slots (decoding).
    func attendEach(_ items: Range<Int>, queryCount: Int, allowedSlots: (Int) -> Range<Int>) {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: max(slotCount, 1)) { scores in
            for item in items {
                let (t, head) = (item / shape.headCount, item % shape.headCount)
                let query = q + t * qWidth + head * dim
                let slots = allowedSlots(t)
                for (i, slot) in slots.enumerated() {
                    scores[i] = Vector.dot(query, k + slot * kvWidth + kvOffset(head), count: dim) * scale
                }
                Ops.softmax(scores.baseAddress!, count: slots.count)
                let result = out + t * qWidth + head * dim
                for (i, slot) in slots.enumerated() {
                    Vector.axpy(scores[i], v + slot * kvWidth + kvOffset(head), result, count: dim)
                }
            }
        }
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
