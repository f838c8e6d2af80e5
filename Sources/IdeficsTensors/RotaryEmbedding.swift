import Foundation

/// Rotary position embedding in the Hugging Face "rotate_half" layout: the two halves of each head are rotated
/// as (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin). Angles are computed in float32 as transformers does.
public struct RotaryEmbedding: Sendable {
    public let headDim: Int
    private let inverseFrequencies: [Float]

    public init(headDim: Int, theta: Double) {
        self.headDim = headDim
        // transformers: 1 / theta ** (arange(0, dim, 2).float() / dim), evaluated in float32.
        inverseFrequencies = (0..<(headDim / 2)).map { i in
            1 / powf(Float(theta), Float(2 * i) / Float(headDim))
        }
    }

    /// Rotates every head of every row of `x` ([rows, heads * headDim]); row r sits at `positions[r]`.
    public func apply(_ x: inout [Float], heads: Int, positions: [Int]) {
        let half = headDim / 2
        var cosines = [Float](repeating: 0, count: half), sines = cosines
        for (row, position) in positions.enumerated() {
            for i in 0..<half {
                let angle = Float(position) * inverseFrequencies[i]
                cosines[i] = cosf(angle)
                sines[i] = sinf(angle)
            }
            for head in 0..<heads {
                let base = (row * heads + head) * headDim
                for i in 0..<half {
                    let x1 = x[base + i], x2 = x[base + half + i]
                    x[base + i] = x1 * cosines[i] - x2 * sines[i]
                    x[base + half + i] = x2 * cosines[i] + x1 * sines[i]
                }
            }
        }
    }
}
