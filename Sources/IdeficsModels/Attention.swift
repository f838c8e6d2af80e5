import Foundation
import IdeficsTensors

/// Scaled dot-product attention of new queries against cached keys and values, with grouped-query heads.
/// Query row t sits in slot `firstSlot + t`; it sees the slots `allowedSlots(t)` returns.
struct AttentionShape {
    let headCount: Int
    let keyValueHeadCount: Int
    let headDim: Int
}

func attend(queries: [Float], keys: [Float], values: [Float], shape: AttentionShape, queryCount: Int,
            allowedSlots: (Int) -> Range<Int>, pool: WorkerPool) -> [Float] {
    let (heads, kvHeads, dim) = (shape.headCount, shape.keyValueHeadCount, shape.headDim)
    let groupSize = heads / kvHeads
    let kvWidth = kvHeads * dim
    let scale = 1 / Float(dim).squareRoot()
    let slotCount = keys.count / kvWidth
    var output = [Float](repeating: 0, count: queryCount * heads * dim)
    queries.withUnsafeBufferPointer { q in
        keys.withUnsafeBufferPointer { k in
            values.withUnsafeBufferPointer { v in
                output.withUnsafeMutableBufferPointer { out in
                    let (q, k, v, out) = (q.baseAddress!, k.baseAddress!, v.baseAddress!, out.baseAddress!)
                    pool.forEachRange(count: heads * queryCount, work: heads * queryCount * slotCount * dim * 2,
                                      minimumPerThread: 1 << 14) { items in
                        withUnsafeTemporaryAllocation(of: Float.self, capacity: max(slotCount, 1)) { scores in
                            for item in items {
                                let (t, head) = (item / heads, item % heads)
                                let kvOffset = (head / groupSize) * dim
                                let query = q + (t * heads + head) * dim
                                let slots = allowedSlots(t)
                                for (i, slot) in slots.enumerated() {
                                    scores[i] = Vector.dot(query, k + slot * kvWidth + kvOffset, count: dim) * scale
                                }
                                Ops.softmax(scores.baseAddress!, count: slots.count)
                                let result = out + (t * heads + head) * dim
                                for (i, slot) in slots.enumerated() {
                                    Vector.axpy(scores[i], v + slot * kvWidth + kvOffset, result, count: dim)
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
