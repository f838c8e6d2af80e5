import IdeficsTensors
import XCTest

/// The tiled online-softmax attention kernels (float32, and bf16 on AMX tiles or with vdpbf16ps) against attention written out in
/// double precision, over head sizes that fill vector panels and tiles exactly, partly, or not at all, query counts
/// on and off the panel width, and the masks the models use (everything, causal, a sliding window, and a row that
/// sees nothing).
final class AttentionKernelTests: XCTestCase {
    private struct Case {
        let queries, slots, depth: Int
        let mask: Mask
    }

    private enum Mask: CaseIterable { case full, causal, window, emptyRow }

    /// Head sizes that fill vector panels and tiles exactly, partly or not at all, every mask, and one long case.
    private static let cases: [Case] = [1, 13, 72, 128].flatMap { depth in
        [8, 37].flatMap { queries in Mask.allCases.map { Case(queries: queries, slots: queries + 150, depth: depth, mask: $0) } }
    } + Mask.allCases.map { Case(queries: 300, slots: 600, depth: 8, mask: $0) }

    /// A case's strided operands (heads inside rows), queries and keys in [-2, 2), values in [-1, 1).
    private struct Operands {
        let c: Case
        let q, k, v: [Float]
        let slots: [Range<Int>]
        var ldq: Int { c.depth * 3 + 1 }
        var ldkv: Int { c.depth * 2 + 3 }
        var ldo: Int { c.depth + 5 }
        var scale: Float { 1 / Float(c.depth).squareRoot() }

        init(_ c: Case, slots: [Range<Int>], generator: inout SplitMix) {
            self.c = c
            self.slots = slots
            let (ldq, ldkv) = (c.depth * 3 + 1, c.depth * 2 + 3)
            q = (0..<c.queries * ldq).map { _ in generator.uniform() * 2 }
            k = (0..<c.slots * ldkv).map { _ in generator.uniform() * 2 }
            v = (0..<c.slots * ldkv).map { _ in generator.uniform() }
        }

        /// The kernel's output rows, [queries, depth].
        func attend(precision: ProductPrecision) -> [Float] {
            var out = [Float](repeating: .nan, count: c.queries * ldo)
            Vector.attention(q, queries: c.queries, ldq: ldq, keys: k, values: v, ldkv: ldkv, depth: c.depth,
                             scale: scale, lower: slots.map { Int32($0.lowerBound) }, upper: slots.map { Int32($0.upperBound) },
                             into: &out, ldo: ldo, precision: precision)
            return (0..<c.queries).flatMap { i in out[i * ldo..<i * ldo + c.depth] }
        }
    }

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
        let cases = Self.cases
        XCTAssertEqual(cases.count, 36)
        for c in cases {
            let o = Operands(c, slots: ranges(c.mask, queries: c.queries, slots: c.slots), generator: &generator)
            let out = o.attend(precision: .float32)
            let expected = reference(q: o.q, k: o.k, v: o.v, depth: c.depth, ldq: o.ldq, ldkv: o.ldkv, scale: o.scale,
                                     ranges: o.slots)
            let worst = zip(out, expected).map { abs(Double($0) - $1) }.max()!
            XCTAssertLessThan(worst, 4e-6, "\(c)")
        }
    }

    /// At bf16 precision (torch's bf16 flash attention: queries, keys, values and the softmax weights rounded to
    /// bf16) against the same double-precision attention of the rounded queries, keys and values: each softmax
    /// weight is off by at most half a bf16 step (2^-9 of itself), so each output value by at most 2^-9 of the
    /// largest |v| it averages (here 1), plus float32 sums (1e-5), and the result must differ from the float32
    /// kernel's somewhere (the rounding happened). Without bf16 products (AMX, or AVX512_BF16 on the avx512 path),
    /// bf16 attention is the float32 kernel, to the bit.
    func testBF16AttentionMatchesRoundedInputsWithinTheWeightsRounding() {
        var generator = SplitMix(seed: 11)
        let cases = Self.cases
        XCTAssertEqual(cases.count, 36)
        func bf16(_ x: Float) -> Float {
            Float(bitPattern: (x.bitPattern &+ 0x7fff &+ ((x.bitPattern >> 16) & 1)) & 0xffff_0000)
        }
        var roundingSeen = false
        for c in cases {
            let o = Operands(c, slots: ranges(c.mask, queries: c.queries, slots: c.slots), generator: &generator)
            let (out, exact) = (o.attend(precision: .bfloat16), o.attend(precision: .float32))
            guard KernelPath.hasBF16Products else {
                XCTAssertEqual(out, exact, "\(c)")
                continue
            }
            let expected = reference(q: o.q.map(bf16), k: o.k.map(bf16), v: o.v.map(bf16), depth: c.depth, ldq: o.ldq,
                                     ldkv: o.ldkv, scale: o.scale, ranges: o.slots)
            let worst = zip(out, expected).map { abs(Double($0) - $1) }.max()!
            roundingSeen = roundingSeen || zip(out, exact).contains { abs($0 - $1) > 1e-5 }
            XCTAssertLessThan(worst, 1.0 / 512 + 1e-5, "\(c)")
            for (i, slots) in o.slots.enumerated() where slots.isEmpty {
                XCTAssertEqual(Array(out[i * c.depth..<(i + 1) * c.depth]), [Float](repeating: 0, count: c.depth),
                               "a query without slots gets zeros")
            }
        }
        XCTAssertEqual(roundingSeen, KernelPath.hasBF16Products)
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
        for precision in ProductPrecision.allCases {
            var out = [Float](repeating: .nan, count: 8 * depth)
            Vector.attention(q, queries: 8, ldq: depth, keys: k, values: v, ldkv: depth, depth: depth, scale: 1,
                             lower: [Int32](repeating: 0, count: 8), upper: [Int32](repeating: Int32(slots), count: 8),
                             into: &out, ldo: depth, precision: precision)
            for i in 0..<8 { XCTAssertEqual(out[i * depth + 1], 350, "query \(i), \(precision)") }
        }
    }

    /// The grouped decoding kernel (the query heads of one key/value head, a few slots to thousands) equals the
    /// per-query dot, softmax and axpy sequence it replaces bit for bit, on every head size and group size, and a
    /// group without slots gets zeros.
    func testGroupedDecodingEqualsPerQueryAttentionBitForBit() {
        var generator = SplitMix(seed: 11)
        var checked = 0
        for depth in [1, 13, 72, 128, 130] {
            for heads in [1, 4, 8, 12] {
                for slots in [0..<0, 0..<1, 3..<40, 0..<1500] {
                    let (ldq, ldkv, ldo) = (depth + 3, depth * 2 + 1, depth + 7)
                    let q = (0..<heads * ldq).map { _ in generator.uniform() * 2 }
                    let k = (0..<slots.upperBound * ldkv).map { _ in generator.uniform() * 2 }
                    let v = (0..<slots.upperBound * ldkv).map { _ in generator.uniform() }
                    let scale = 1 / Float(depth).squareRoot()
                    var out = [Float](repeating: .nan, count: heads * ldo)
                    Vector.attention(q, heads: heads, ldq: ldq, keys: k, values: v, ldkv: ldkv, depth: depth, scale: scale,
                                     slots: slots, into: &out, ldo: ldo)
                    for head in 0..<heads {
                        var expected = [Float](repeating: 0, count: depth)
                        var scores = slots.map { slot in Vector.dot(q.withUnsafeBufferPointer { $0.baseAddress! + head * ldq },
                                                                      k.withUnsafeBufferPointer { $0.baseAddress! + slot * ldkv },
                                                                      count: depth) * scale }
                        scores.withUnsafeMutableBufferPointer { Ops.softmax($0.baseAddress!, count: $0.count) }
                        for (i, slot) in slots.enumerated() {
                            v.withUnsafeBufferPointer { v in
                                Vector.axpy(scores[i], v.baseAddress! + slot * ldkv, &expected, count: depth)
                            }
                        }
                        let got = Array(out[head * ldo..<head * ldo + depth])
                        XCTAssertEqual(got.map(\.bitPattern), expected.map(\.bitPattern),
                                       "depth \(depth), \(heads) heads, slots \(slots), head \(head)")
                        checked += 1
                    }
                }
            }
        }
        XCTAssertEqual(checked, 5 * 4 * (1 + 4 + 8 + 12))
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
