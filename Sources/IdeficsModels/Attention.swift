import Foundation
import IdeficsTensors

/// Scaled dot-product attention of new queries against cached keys and values, with grouped-query heads.
/// Query row t sees the slots `allowedSlots(t)` returns (a causal window, or everything).
struct AttentionShape {
    let headCount: Int
    let keyValueHeadCount: Int
    let headDim: Int
}

/// Queries per block of the many-query path: its scores ([block, slots], at most 256 x 4900 floats for one 980 px
/// image) stay in L3, and each block amortizes packing the keys and values over 256 queries (+13% image encoding).
private let queryBlock = 256

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
                        let valuesT = operands.transposedValues()
                        let blocks = (queryCount + queryBlock - 1) / queryBlock
                        valuesT.withUnsafeBufferPointer { vt in
                            pool.run(tasks: shape.headCount * blocks) { task in
                                let (head, block) = (task / blocks, task % blocks)
                                let queries = block * queryBlock..<min(queryCount, (block + 1) * queryBlock)
                                operands.attendBlock(head: head, queries: queries, valuesT: vt.baseAddress!,
                                                     allowedSlots: allowedSlots)
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

    /// The values of each key-value head transposed, [kvHeads][dim][slots], so that weighting them is a matrix
    /// product; made once per call and shared by every query block.
    func transposedValues() -> [Float] {
        var out = [Float](repeating: 0, count: kvWidth * slotCount)
        for slot in 0..<slotCount {
            for column in 0..<kvWidth { out[column * slotCount + slot] = v[slot * kvWidth + column] }
        }
        return out
    }

    /// A block of queries of one head as two matrix products over the union of their slots, with the slots a row
    /// may not see masked before the softmax (prefill, vision, perceiver).
    func attendBlock(head: Int, queries: Range<Int>, valuesT: UnsafePointer<Float>, allowedSlots: (Int) -> Range<Int>) {
        let lower = queries.map { allowedSlots($0).lowerBound }.min()!
        let upper = queries.map { allowedSlots($0).upperBound }.max()!
        let width = upper - lower
        let rows = queries.count
        var scores = [Float](repeating: 0, count: rows * width)
        scores.withUnsafeMutableBufferPointer { s in
            Vector.matmul(q + queries.lowerBound * qWidth + head * dim, rows: rows, ldx: qWidth,
                          k + lower * kvWidth + kvOffset(head), wRows: width, ldw: kvWidth, depth: dim,
                          into: s.baseAddress!, ldy: width)
            for (row, t) in queries.enumerated() {
                let allowed = allowedSlots(t)
                let line = s.baseAddress! + row * width
                for i in 0..<width {
                    line[i] = allowed.contains(lower + i) ? line[i] * scale : -.infinity
                }
                Ops.softmax(line, count: width)
            }
            Vector.matmul(s.baseAddress!, rows: rows, ldx: width, valuesT + kvOffset(head) * slotCount + lower,
                          wRows: dim, ldw: slotCount, depth: width, into: out + queries.lowerBound * qWidth + head * dim,
                          ldy: qWidth)
        }
    }
}
