import Foundation

/// transformers' logits processors and warpers, one function each, with the same semantics and order as
/// `generate` builds them: repetition penalty, (TGI's and OpenAI's occurrence penalties), bad words, then (when sampling) temperature, top-k, top-p, typical-p.
public enum LogitsProcessors {
    /// Applies the chain for one step; `history` is every token so far, prompt included, of which the last
    /// `generatedCount` were generated.
    public static func process(_ scores: inout [Float], history: [Int], generatedCount: Int, parameters p: GenerationParameters) {
        if p.repetitionPenalty != 1 { repetitionPenalty(&scores, history: history, penalty: p.repetitionPenalty) }
        if let penalty = p.occurrencePenalty { occurrencePenalty(&scores, history: history, generatedCount: generatedCount, penalty) }
        if !p.badWordsIds.isEmpty { banBadWords(&scores, history: history, badWords: p.badWordsIds, eosTokenIds: p.eosTokenIds) }
        if generatedCount < p.minNewTokens { banEndOfSequence(&scores, eosTokenIds: p.eosTokenIds) }
        guard p.doSample else { return }
        if p.temperature != 1 { temperature(&scores, p.temperature) }
        if p.topK != 0 { topK(&scores, p.topK) }
        if p.topP < 1 { topP(&scores, p.topP) }
        if p.typicalP < 1 { typical(&scores, mass: p.typicalP) }
    }

    /// Seen tokens: negative scores are multiplied by the penalty, others divided (RepetitionPenaltyLogitsProcessor).
    public static func repetitionPenalty(_ scores: inout [Float], history: [Int], penalty: Float) {
        for token in Set(history) where scores.indices.contains(token) {
            let s = scores[token]
            scores[token] = s < 0 ? s * penalty : s / penalty
        }
    }

    /// Subtracts `penalty` from the seen tokens' scores (see `OccurrencePenalty` for the two conventions).
    public static func occurrencePenalty(_ scores: inout [Float], history: [Int], generatedCount: Int,
                                         _ penalty: OccurrencePenalty) {
        let counted = { (tokens: ArraySlice<Int>) in tokens.reduce(into: [Int: Int]()) { $0[$1, default: 0] += 1 } }
        switch penalty {
        case .openAI(let frequency, let presence):
            for (token, count) in counted(history.suffix(generatedCount)) where scores.indices.contains(token) {
                scores[token] -= frequency * Float(count) + presence
            }
        case .tgi(let frequency):
            let length = Float(history.count)
            for (token, count) in counted(history[...]) where scores.indices.contains(token) {
                scores[token] -= Float(count) / length * frequency // as TGI: the share, then times the penalty
            }
        }
    }

    /// A bad word's last token is banned when the tokens before it were just generated (NoBadWordsLogitsProcessor);
    /// single-token bad words that are end-of-sequence tokens are ignored, as transformers does.
    public static func banBadWords(_ scores: inout [Float], history: [Int], badWords: [[Int]], eosTokenIds: [Int]) {
        for word in badWords where !(word.count == 1 && eosTokenIds.contains(word[0])) {
            let prefix = word.dropLast()
            guard history.count >= prefix.count, history.suffix(prefix.count).elementsEqual(prefix),
                  let last = word.last, scores.indices.contains(last) else { continue }
            scores[last] = -.infinity
        }
    }

    /// MinNewTokensLengthLogitsProcessor: no end of sequence before `min_new_tokens` tokens.
    public static func banEndOfSequence(_ scores: inout [Float], eosTokenIds: [Int]) {
        for id in eosTokenIds where scores.indices.contains(id) { scores[id] = -.infinity }
    }

    public static func temperature(_ scores: inout [Float], _ temperature: Float) {
        for i in scores.indices { scores[i] /= temperature }
    }

    /// Keeps every score at least as large as the k-th largest (ties at the threshold survive).
    public static func topK(_ scores: inout [Float], _ k: Int) {
        guard k < scores.count else { return }
        let threshold = scores.sorted(by: >)[k - 1]
        for i in scores.indices where scores[i] < threshold { scores[i] = -.infinity }
    }

    /// Nucleus filtering: sorted ascending, removes the tokens whose cumulative probability is <= 1 - p,
    /// always keeping the `minTokensToKeep` most likely.
    public static func topP(_ scores: inout [Float], _ p: Float, minTokensToKeep: Int = 1) {
        let order = ascendingOrder(scores)
        let probabilities = softmax(order.map { scores[$0] })
        var cumulative: Float = 0
        for (rank, index) in order.enumerated().dropLast(minTokensToKeep) {
            cumulative += probabilities[rank]
            if cumulative <= 1 - p { scores[index] = -.infinity }
        }
    }

    /// Locally typical filtering (TypicalLogitsWarper): keeps the tokens whose information content is closest to
    /// the entropy, up to `mass` of probability.
    public static func typical(_ scores: inout [Float], mass: Float, minTokensToKeep: Int = 1) {
        let logProbabilities = logSoftmax(scores)
        var entropy: Float = 0
        for l in logProbabilities where l.isFinite { entropy -= l * expf(l) }
        let shifted = logProbabilities.map { abs(-$0 - entropy) }
        let order = ascendingOrder(shifted)
        let probabilities = softmax(order.map { scores[$0] })
        var cumulative: Float = 0
        var lastIndex = 0
        for probability in probabilities {
            cumulative += probability
            if cumulative < mass { lastIndex += 1 }
        }
        lastIndex = min(lastIndex, scores.count - 1)
        let cutoff = shifted[order[lastIndex]]
        for (rank, index) in order.enumerated() where rank >= minTokensToKeep && shifted[index] > cutoff {
            scores[index] = -.infinity
        }
    }

    public static func softmax(_ scores: [Float]) -> [Float] {
        let maximum = scores.max() ?? 0
        let exponentials = scores.map { expf($0 - maximum) }
        let sum = exponentials.reduce(0, +)
        return exponentials.map { $0 / sum }
    }

    static func logSoftmax(_ scores: [Float]) -> [Float] {
        let (maximum, logSum) = normalizer(scores[...])
        return scores.map { $0 - maximum - logSum }
    }

    /// `logSoftmax(Array(scores))[index]` without the whole array (`index` counts from the slice's start).
    static func logProbability(of index: Int, in scores: ArraySlice<Float>) -> Float {
        let (maximum, logSum) = normalizer(scores)
        return scores[scores.startIndex + index] - maximum - logSum
    }

    /// The largest score and log(sum(exp(score - largest))): what a log-softmax subtracts.
    private static func normalizer(_ scores: ArraySlice<Float>) -> (maximum: Float, logSum: Float) {
        let maximum = scores.max() ?? 0
        return (maximum, logf(scores.reduce(0) { $0 + expf($1 - maximum) }))
    }

    /// The `count` largest finite values with their indices, largest first, ties in index order (fewer when the
    /// processors masked the rest to -inf): one pass keeping a sorted list of `count`, not a sort of the vocabulary.
    static func largest(_ count: Int, of values: [Float]) -> [TokenLogprob] {
        guard count > 0 else { return [] }
        var kept = [TokenLogprob]()
        kept.reserveCapacity(count + 1)
        for (index, value) in values.enumerated()
        where value.isFinite && (kept.count < count || value > kept[kept.count - 1].logprob) {
            let slot = kept.firstIndex { value > $0.logprob } ?? kept.count
            kept.insert(TokenLogprob(id: index, logprob: value), at: slot)
            if kept.count > count { kept.removeLast() }
        }
        return kept
    }

    /// Indices sorted by value, ties in index order (a stable sort).
    static func ascendingOrder(_ values: [Float]) -> [Int] {
        values.indices.sorted { values[$0] < values[$1] || (values[$0] == values[$1] && $0 < $1) }
    }
}
