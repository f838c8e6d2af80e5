import IdeficsModels
import IdeficsTensors
/// Sequences that join and leave one shared decode step (continuous batching). Each row keeps its own session,
/// logits processing, random generator and stop state, and the batched decoder call gives each row what it would
/// compute alone, so a row's tokens are those of a lone `Generator.generate` whoever shares its steps.
/// Prompts are prefilled in chunks of at most `prefillChunk` tokens, one chunk per step, in the same batched call
/// as the decoding rows: a long prompt stalls the running rows for one chunk at a time, not for its whole prefill.
/// (A chunked prompt's logits equal a whole prefill's up to float reassociation, as with a chat's cached prefix.)
public struct ContinuousBatch<Text: IncrementalTextDecoder, Session: ContinuousBatchSession> {
    /// What a row produced: a token, and the whole output when that token ended it (it has left the batch).
    public struct Event {
        public let id: Int
        public let token: GeneratedToken
        public let finished: GenerationOutput?
    }

    private struct Row {
        let id: Int
        var session: Session
        var state: SequenceState<Text>
        /// Prompt tokens still to prefill (empty once the row decodes).
        var pending: [Int]
        var prefillSeconds = 0.0
        var decodeStart: ContinuousClock.Instant?
        /// With prompt log-probabilities: the logits of the last prompt token run so far, which predict the next.
        var carried: [Float]?

        /// Records the log-probability of each of `chunk`'s tokens under the logits before it (`logits`: one row per
        /// token of the chunk); returns the last row, the logits that choose the first generated token.
        mutating func scorePrompt(_ chunk: [Int], logits: [Float]) -> [Float] {
            let vocabulary = logits.count / chunk.count
            for (i, token) in chunk.enumerated() {
                let before = i == 0 ? carried?[...] : logits[(i - 1) * vocabulary..<i * vocabulary]
                state.output.promptLogprobs.append(before.map { LogitsProcessors.logProbability(of: token, in: $0) })
            }
            carried = Array(logits[((chunk.count - 1) * vocabulary)...]) // only the last row outlives the chunk
            return carried!
        }
    }

    /// A row that could not go on, and why.
    public struct Failure {
        public let id: Int
        public let error: Error
    }

    private var rows: [Row] = []
    private var failures: [Failure] = []
    /// Sessions of rows that left, by row id, for a caller that keeps them (a prefix cache): `takeRetired` empties it.
    private var retired: [(id: Int, session: Session)] = []
    private let clock = ContinuousClock()
    public let prefillChunk: Int

    public init(prefillChunk: Int = .max) {
        precondition(prefillChunk > 0, "a prefill chunk has at least one token")
        self.prefillChunk = prefillChunk
    }

    public var count: Int { rows.count }
    public var isEmpty: Bool { rows.isEmpty }
    public var ids: [Int] { rows.map(\.id) }

    /// The sessions of the rows that left since the last call, their caches holding what they ran.
    public mutating func takeRetired() -> [(id: Int, session: Session)] {
        defer { retired = [] }
        return retired
    }

    /// Rows still prefilling their prompt.
    public var prefilling: Int { rows.lazy.filter { !$0.pending.isEmpty }.count }

    /// The row joins with `prompt` (the part `session` does not hold cached); its prefill runs in the next steps,
    /// and the step that ends it gives the row's first token. Returns how many prompt tokens the session had cached.
    @discardableResult
    public mutating func add(id: Int, session: Session, prompt: [Int], parameters: GenerationParameters,
                             text: Text) throws -> Int {
        var session = session
        return try add(id: id, session: &session, prompt: prompt, parameters: parameters, text: text)
    }

    /// The same, taking `session` over: once the row joined, the caller's holds nothing (so that the row's cache is
    /// its only reference and grows in place, not copied at its first append); a refused row leaves it untouched.
    @discardableResult
    public mutating func add(id: Int, session: inout Session, prompt: [Int], parameters: GenerationParameters,
                             text: Text) throws -> Int {
        precondition(!rows.contains { $0.id == id }, "row \(id) is in the batch already")
        var state = try SequenceState(prompt: prompt, contextLength: session.contextLength, parameters: parameters, text: text)
        var session = session.handOver()
        if parameters.promptLogprobs { session.truncate(to: 0) } // every prompt token's logits are needed
        session.reserve(positions: prompt.count + state.limit)
        let pending = session.reusePrefix(of: prompt)
        state.output.timings.reusedPromptTokens = session.reusedPromptTokens
        rows.append(Row(id: id, session: session, state: state, pending: pending))
        return session.reusedPromptTokens
    }

    /// One batched decoder call: every decoding row's next token, and the next chunk of the oldest prefilling row
    /// (whose first token comes with its last chunk). Rows that finish leave; a row that cannot go on (its tokens
    /// do not fit the context or its images, its logits are not finite) leaves alone, its error kept for
    /// `takeFailures`, and the others run on.
    public mutating func step() throws -> [Event] {
        guard !rows.isEmpty else { return [] }
        let chunked = rows.firstIndex { !$0.pending.isEmpty }
        var leaving = [Int: Error?]() // row index: nil when finished, the error when failed
        var running = [Int](), tokens = [[Int]]()
        for index in rows.indices where rows[index].pending.isEmpty || index == chunked {
            let next = index == chunked ? Array(rows[index].pending.prefix(prefillChunk)) : [rows[index].state.history.last!]
            do {
                try rows[index].session.check(next)
                (running, tokens) = (running + [index], tokens + [next])
            } catch {
                leaving[index] = error
            }
        }
        // The sessions are handed over for the call, so that each cache grows in place (a second reference left in
        // `rows` would make the first append copy the whole cache), and handed back before anything else can throw.
        var sessions = running.map { index in rows[index].session.handOver() }
        let start = clock.now
        let everyLogit = Set(running.indices.filter { running[$0] == chunked && rows[running[$0]].state.parameters.promptLogprobs })
        let result = Result {
            try Session.step(&sessions, rows: Array(sessions.indices), tokens: tokens, allLogits: everyLogit)
        }
        let seconds = (clock.now - start).seconds
        for (slot, index) in running.enumerated() { rows[index].session = sessions[slot] }
        sessions = []
        var logits = try result.get()
        var events = [Event]()
        for (slot, index) in running.enumerated() {
            if index == chunked {
                if everyLogit.contains(slot) { logits[slot] = rows[index].scorePrompt(tokens[slot], logits: logits[slot]) }
                rows[index].prefillSeconds += seconds
                rows[index].pending.removeFirst(tokens[slot].count)
                guard rows[index].pending.isEmpty else { continue }
                rows[index].decodeStart = clock.now
            }
            do {
                let token = try rows[index].state.choose(logits[slot])
                let finished = rows[index].state.finish.map { _ in finish(rows[index]) }
                events.append(Event(id: rows[index].id, token: token, finished: finished))
                if finished != nil { leaving[index] = .some(nil) }
            } catch {
                leaving[index] = error
            }
        }
        // Only once nothing can throw: the finished rows leave, each session retired once; failed ones are not kept.
        for (index, error) in leaving.sorted(by: { $0.key < $1.key }) {
            if let error { failures.append(Failure(id: rows[index].id, error: error)) } else { retired.append((rows[index].id, rows[index].session)) }
        }
        rows = rows.indices.filter { leaving[$0] == nil }.map { rows[$0] }
        return events
    }

    /// The rows that left with an error since the last call.
    public mutating func takeFailures() -> [Failure] {
        defer { failures = [] }
        return failures
    }

    /// Ends row `id` now (its client went away): its output so far, finish reason `length`.
    @discardableResult
    public mutating func remove(id: Int) -> GenerationOutput? {
        guard let index = rows.firstIndex(where: { $0.id == id }) else { return nil }
        let row = rows.remove(at: index)
        if row.pending.isEmpty { retired.append((row.id, row.session)) } // a half-prefilled cache is not kept
        return finish(row)
    }

    private func finish(_ row: Row) -> GenerationOutput {
        var state = row.state
        return state.finalize(prefillSeconds: row.prefillSeconds,
                              decodeSeconds: row.decodeStart.map { (clock.now - $0).seconds } ?? 0)
    }
}

/// A decoding state that can be a row of a `ContinuousBatch`: its cache handed over for a batched call, its prompt
/// prefilled in chunks after the prefix it holds, each chunk checked before the call that runs every row.
public protocol ContinuousBatchSession: BatchedNextTokenModel {
    /// This state, leaving an empty one in its place (the value returned then holds the only reference to its cache).
    mutating func handOver() -> Self
    mutating func truncate(to count: Int)
    /// Keeps the cached prefix `prompt` starts with (as far as it may be reused); returns the rest, to run.
    mutating func reusePrefix(of prompt: [Int]) -> [Int]
    /// Throws what running `newTokens` next would.
    func check(_ newTokens: [Int]) throws
    /// Runs `tokens[i]` after `sessions[rows[i]]`; rows at indices in `allLogits` get every new token's logits.
    static func step(_ sessions: inout [Self], rows: [Int], tokens: [[Int]], allLogits: Set<Int>) throws -> [[Float]]
}

extension DecoderSession: ContinuousBatchSession {}
extension IdeficsSession: ContinuousBatchSession {}
