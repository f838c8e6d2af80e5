/// xoshiro256** seeded through SplitMix64: the same seed gives the same tokens on every run and machine.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var s = seed
        func splitMix() -> UInt64 {
            s &+= 0x9E37_79B9_7F4A_7C15
            var z = s
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        state = (splitMix(), splitMix(), splitMix(), splitMix())
    }

    public mutating func next() -> UInt64 {
        let result = ((state.1 &* 5) << 7 | (state.1 &* 5) >> 57) &* 9
        let t = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= t
        state.3 = state.3 << 45 | state.3 >> 19
        return result
    }
}

public enum Sampler {
    /// The first index of the largest score, as torch.argmax picks it.
    public static func argmax(_ scores: [Float]) -> Int {
        var best = 0
        for i in scores.indices where scores[i] > scores[best] { best = i }
        return best
    }

    /// Draws an index with probability softmax(scores).
    public static func sample(_ scores: [Float], using generator: inout SeededGenerator) -> Int {
        let probabilities = LogitsProcessors.softmax(scores)
        let u = Float(Double(generator.next() >> 11) * 0x1p-53) * probabilities.reduce(0, +)
        var cumulative: Float = 0
        var lastPossible = argmax(scores)
        for (index, probability) in probabilities.enumerated() where probability > 0 {
            cumulative += probability
            lastPossible = index
            if u < cumulative { return index }
        }
        return lastPossible
    }
}
