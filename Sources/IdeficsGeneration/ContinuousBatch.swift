import IdeficsModels
import IdeficsTensors
/// Sequences that join and leave one shared decode step (continuous batching). Each row keeps its own session,
/// logits processing, random generator and stop state, and the batched decoder call gives each row what it would
/// compute alone, so a row's tokens are those of a lone `Generator.generate` whoever shares its steps.
/// Prompts are prefilled in chunks of at most `prefillChunk` tokens, one chunk per step, in the same batched call
/// as the decoding rows: a long prompt stalls the running rows for one chunk at a time, not for its whole prefill.
/// (A chunked prompt's logits equal a whole prefill's up to float reassociation, as with a chat's cached prefix.)
public struct ContinuousBatch<Text: IncrementalTextDecoder> {
    /// What a row produced: a token, and the whole output when that token ended it (it has left the batch).
    public struct Event {
        public let id: Int
        public let token: GeneratedToken
        public let finished: GenerationOutput?
    }

    private struct Row {
        let id: Int
        var session: DecoderSession
        var state: SequenceState<Text>
        /// Prompt tokens still to prefill (empty once the row decodes).
        var pending: [Int]
        var prefillSeconds = 0.0
        var decodeStart: ContinuousClock.Instant?
    }

    private var rows: [Row] = []
    /// Sessions of rows that left, for a caller that keeps them (a prefix cache): `takeRetired` empties it.
    private var retired: [DecoderSession] = []
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
    public mutating func takeRetired() -> [DecoderSession] {
        defer { retired = [] }
        return retired
    }

    /// Rows still prefilling their prompt.
    public var prefilling: Int { rows.lazy.filter { !$0.pending.isEmpty }.count }

    /// The row joins with `prompt` (the part `session` does not hold cached); its prefill runs in the next steps,
    /// and the step that ends it gives the row's first token. Returns how many prompt tokens the session had cached.
    @discardableResult
    public mutating func add(id: Int, session: DecoderSession, prompt: [Int], parameters: GenerationParameters,
                             text: Text) throws -> Int {
        precondition(!rows.contains { $0.id == id }, "row \(id) is in the batch already")
        var session = session
        var state = try SequenceState(prompt: prompt, contextLength: session.contextLength, parameters: parameters, text: text)
        session.reserve(positions: prompt.count + state.limit)
        let pending = session.reusePrefix(of: prompt)
        state.output.timings.reusedPromptTokens = session.reusedPromptTokens
        rows.append(Row(id: id, session: session, state: state, pending: pending))
        return session.reusedPromptTokens
    }

    /// One batched decoder call: every decoding row's next token, and the next chunk of the oldest prefilling row
    /// (whose first token comes with its last chunk). Rows that finish leave.
    public mutating func step() throws -> [Event] {
        guard !rows.isEmpty else { return [] }
        let chunked = rows.firstIndex { !$0.pending.isEmpty }
        let running = rows.indices.filter { rows[$0].pending.isEmpty || $0 == chunked }
        let tokens = running.map { index in
            index == chunked ? Array(rows[index].pending.prefix(prefillChunk)) : [rows[index].state.history.last!]
        }
        // The sessions are handed over for the call, so that each cache grows in place (a second reference left in
        // `rows` would make the first append copy the whole cache), and handed back before anything else can throw.
        var sessions = running.map { index in
            defer { rows[index].session.cache = KVCache(layers: 0, rowWidth: 0) }
            return rows[index].session
        }
        let start = clock.now
        let result = Result { try DecoderSession.step(&sessions, rows: Array(sessions.indices), tokens: tokens) }
        let seconds = (clock.now - start).seconds
        for (slot, index) in running.enumerated() { rows[index].session = sessions[slot] }
        sessions = []
        let logits = try result.get()
        var events = [Event](), leaving = Set<Int>()
        for (slot, index) in running.enumerated() {
            if index == chunked {
                rows[index].prefillSeconds += seconds
                rows[index].pending.removeFirst(tokens[slot].count)
                guard rows[index].pending.isEmpty else { continue }
                rows[index].decodeStart = clock.now
            }
            let token = try rows[index].state.choose(logits[slot])
            if rows[index].state.finish == nil {
                events.append(Event(id: rows[index].id, token: token, finished: nil))
            } else {
                events.append(Event(id: rows[index].id, token: token, finished: finish(rows[index])))
                leaving.insert(index)
            }
        }
        // Only once nothing can throw: the finished rows leave, each session retired once.
        retired += leaving.sorted().map { rows[$0].session }
        rows = rows.indices.filter { !leaving.contains($0) }.map { rows[$0] }
        return events
    }

    /// Ends row `id` now (its client went away): its output so far, finish reason `length`.
    @discardableResult
    public mutating func remove(id: Int) -> GenerationOutput? {
        guard let index = rows.firstIndex(where: { $0.id == id }) else { return nil }
        let row = rows.remove(at: index)
        if row.pending.isEmpty { retired.append(row.session) } // a half-prefilled cache is not kept
        return finish(row)
    }

    private func finish(_ row: Row) -> GenerationOutput {
        var state = row.state
        return state.finalize(prefillSeconds: row.prefillSeconds,
                              decodeSeconds: row.decodeStart.map { (clock.now - $0).seconds } ?? 0)
    }
}
