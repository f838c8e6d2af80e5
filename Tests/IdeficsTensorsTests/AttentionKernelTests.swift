import IdeficsTensors
import XCTest

/// The tiled online-softmax attention kernel against attention written out in double precision, over head sizes
/// that fill vector panels exactly, partly, or not at all, query counts on and off the panel width, and the masks
/// the models use (everything, causal, a sliding window, and a row that sees nothing).
final class AttentionKernelTests: XCTestCase {
    private struct Case {
        let queries, slots, depth: Int
        let mask: Mask
    }

    private enum Mask: CaseIterable { case full, causal, window, emptyRow }

    private func ranges(_ mask: Mask, queries: Int, slots: Int) -> [Range<Int>] {
        (0..<queries).map { i in
            let slot = slots - queries + i // queries are the last rows of the slots, as in prefill
            switch mask {
            case .full: return 0..<slots
            case .causal: return 0..<slot + 1
            case .window: return max(0, slot - 40 + 1)..<slot + 1
            case .emptyRow: return i == 1 ? 0..<0 : 0..<slot + 1
            }
        }
    }

    private func reference(q: [Float], k: [Float], v: [Float], depth: Int, ldq: Int, ldkv: Int, scale: Float,
                           ranges: [Range<Int>]) -> [Double] {
        var out = [Double](repeating: 0, count: ranges.count * depth)
        for (i, slots) in ranges.enumerated() where !slots.isEmpty {
            var weights = [Double](repeating: 0, count: slots.count)
            for (n, j) in slots.enumerated() {
                var dot = 0.0
                for c in 0..<depth { dot += Double(q[i * ldq + c]) * Double(k[j * ldkv + c]) }
                weights[n] = Double(scale) * dot
            }
            let top = weights.max()!
            var total = 0.0
            for n in weights.indices {
                weights[n] = exp(weights[n] - top)
                total += weights[n]
            }
            for (n, j) in slots.enumerated() {
                for c in 0..<depth { out[i * depth + c] += weights[n] * Double(v[j * ldkv + c]) / total }
            }
        }
        return out
    }

    /// Values in [-1, 1] averaged over at most ~600 slots in float32: errors stay within ~1e-6, so 4e-6 per value is
    /// tight enough to catch any wrongly weighted or missed slot (each weighs ~1e-3 or more). The slots span two and
    /// more tiles of keys (128 at most) and the queries two and more panels (16 or 32 lanes).
    func testMatchesDoublePrecisionAttentionOnEveryShapeAndMask() {
        var generator = SplitMix(seed: 7)
        var cases = [Case]()
        for depth in [1, 13, 72, 128] {
            for queries in [8, 37] {
                for mask in Mask.allCases { cases.append(Case(queries: queries, slots: queries + 150, depth: depth, mask: mask)) }
            }
        }
        for mask in Mask.allCases { cases.append(Case(queries: 300, slots: 600, depth: 8, mask: mask)) }
        XCTAssertEqual(cases.count, 36)
        for c in cases {
            let (ldq, ldkv, ldo) = (c.depth * 3 + 1, c.depth * 2 + 3, c.depth + 5) // strided, as heads inside rows
            let q = (0..<c.queries * ldq).map { _ in generator.uniform() * 2 }
            let k = (0..<c.slots * ldkv).map { _ in generator.uniform() * 2 }
            let v = (0..<c.slots * ldkv).map { _ in generator.uniform() }
            let slots = ranges(c.mask, queries: c.queries, slots: c.slots)
            let lower = slots.map { Int32($0.lowerBound) }, upper = slots.map { Int32($0.upperBound) }
            let scale = 1 / Float(c.depth).squareRoot()
            var out = [Float](repeating: .nan, count: c.queries * ldo)
            Vector.attention(q, queries: c.queries, ldq: ldq, keys: k, values: v, ldkv: ldkv, depth: c.depth,
                             scale: scale, lower: lower, upper: upper, into: &out, ldo: ldo)
            let expected = reference(q: q, k: k, v: v, depth: c.depth, ldq: ldq, ldkv: ldkv, scale: scale, ranges: slots)
            var worst = 0.0
            for i in 0..<c.queries {
                for j in 0..<c.depth { worst = max(worst, abs(Double(out[i * ldo + j]) - expected[i * c.depth + j])) }
            }
            XCTAssertLessThan(worst, 4e-6, "\(c)")
        }
    }

    /// Scores of ±1000 in different tiles: the running maximum is rescaled, never overflowed.
    func testLargeScoresInLaterTilesRescaleWhatCameBefore() {
        let slots = 400, depth = 4
        var k = [Float](repeating: 0, count: slots * depth), v = [Float](repeating: 0, count: slots * depth)
        for j in 0..<slots {
            k[j * depth] = j == 350 ? 1000 : -1000 // one dominant slot late in the slots
            v[j * depth + 1] = Float(j)
        }
        let q = [Float](repeating: 1, count: 8 * depth)
        var out = [Float](repeating: .nan, count: 8 * depth)
        Vector.attention(q, queries: 8, ldq: depth, keys: k, values: v, ldkv: depth, depth: depth, scale: 1,
                         lower: [Int32](repeating: 0, count: 8), upper: [Int32](repeating: Int32(slots), count: 8),
                         into: &out, ldo: depth)
        for i in 0..<8 { XCTAssertEqual(out[i * depth + 1], 350, "query \(i)") }
    }
}

/// A small deterministic generator (SplitMix64) so that the cases are the same on every machine.
struct SplitMix {
    private var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func uniform() -> Float { // in [-1, 1)
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return Float(z >> 40) / Float(1 << 23) - 1
    }
}
