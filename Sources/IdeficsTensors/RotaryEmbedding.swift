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

    /// The cosines and sines of the rows' angles, [rows, headDim / 2] each: computed once per forward pass and
    /// shared by every layer's queries and keys.
    public struct Angles: Sendable {
        let cosines: [Float], sines: [Float]
    }

    /// The angles of rows at `positions`, position times frequency in float32 as transformers computes them.
    public func angles(positions: [Int]) -> Angles {
        let half = headDim / 2
        var cosines = [Float](repeating: 0, count: positions.count * half), sines = cosines
        for (row, position) in positions.enumerated() {
            for i in 0..<half {
                let angle = Float(position) * inverseFrequencies[i]
                cosines[row * half + i] = cosf(angle)
                sines[row * half + i] = sinf(angle)
            }
        }
        return Angles(cosines: cosines, sines: sines)
    }

    /// Rotates every head of every row of `x` ([rows, heads * headDim]) by its row's `angles`.
    public func apply(_ x: inout [Float], heads: Int, angles: Angles) {
        let half = headDim / 2
        precondition(x.count == angles.cosines.count * 2 * heads, "rows do not match the angles")
        angles.cosines.withUnsafeBufferPointer { cosines in
            angles.sines.withUnsafeBufferPointer { sines in
                x.withUnsafeMutableBufferPointer { x in
                    for row in 0..<cosines.count / half {
                        let (c, s) = (cosines.baseAddress! + row * half, sines.baseAddress! + row * half)
                        for head in 0..<heads {
                            let x1 = x.baseAddress! + (row * heads + head) * headDim, x2 = x1 + half
                            for i in 0..<half {
                                let (a, b) = (x1[i], x2[i])
                                x1[i] = a * c[i] - b * s[i]
                                x2[i] = b * c[i] + a * s[i]
                            }
                        }
                    }
                }
            }
        }
    }
}
