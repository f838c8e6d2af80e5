import IdeficsTensors
/// Sequences that join and leave one shared decode step (continuous batching). Each row keeps its own session,
/// logits processing, random generator and stop state, and the batched decoder call gives each row what it would
/// compute alone, so a row's tokens are those of a lone `Generator.generate` whoever shares its steps.
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
        let prefillSeconds: Double
        let joined: ContinuousClock.Instant
    }

    private var rows: [Row] = []
    private let clock = ContinuousClock()

    public init() {}

    public var count: Int { rows.count }
    public var isEmpty: Bool { rows.isEmpty }
    public var ids: [Int] { rows.map(\.id) }

    /// Prefills `prompt` in `session` and chooses the row's first token from it; the row joins the batch unless
    /// that token already ends it.
    public mutating func add(id: Int, session: DecoderSession, prompt: [Int], parameters: GenerationParameters,
                             text: Text) throws -> Event {
        precondition(!rows.contains { $0.id == id }, "row \(id) is in the batch already")
        var session = session
        var state = try SequenceState(prompt: prompt, contextLength: session.contextLength, parameters: parameters, text: text)
        session.reserve(positions: prompt.count + state.limit)
        let start = clock.now
        let logits = try session.prefill(prompt)
        state.output.timings.reusedPromptTokens = session.reusedPromptTokens
        let prefillSeconds = (clock.now - start).seconds
        let token = try state.choose(logits)
        guard state.finish == nil else {
            return Event(id: id, token: token, finished: state.finalize(prefillSeconds: prefillSeconds, decodeSeconds: 0))
        }
        rows.append(Row(id: id, session: session, state: state, prefillSeconds: prefillSeconds, joined: clock.now))
        return Event(id: id, token: token, finished: nil)
    }

    /// One batched decoder call for every row: each gets its next token; rows that finish leave.
    public mutating func step() throws -> [Event] {
        guard !rows.isEmpty else { return [] }
        var sessions = rows.map(\.session)
        let logits = try DecoderSession.step(&sessions, rows: Array(sessions.indices),
                                             tokens: rows.map { [$0.state.history.last!] })
        var events = [Event](), kept = [Row]()
        for index in rows.indices {
            var row = rows[index]
            row.session = sessions[index]
            let token = try row.state.choose(logits[index])
            if row.state.finish == nil {
                kept.append(row)
                events.append(Event(id: row.id, token: token, finished: nil))
            } else {
                events.append(Event(id: row.id, token: token, finished: finish(&row)))
            }
        }
        rows = kept
        return events
    }

    /// Ends row `id` now (its client went away): its output so far, finish reason `length`.
    @discardableResult
    public mutating func remove(id: Int) -> GenerationOutput? {
        guard let index = rows.firstIndex(where: { $0.id == id }) else { return nil }
        var row = rows.remove(at: index)
        return finish(&row)
    }

    private func finish(_ row: inout Row) -> GenerationOutput {
        row.state.finalize(prefillSeconds: row.prefillSeconds, decodeSeconds: (clock.now - row.joined).seconds)
    }
}
