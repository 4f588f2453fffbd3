import Foundation
import Logging
import NIOCore
import Platform

/// Turns what went wrong with a provider call into the `DomainError`s the `AIProvider` contract
/// promises. Messages name the provider and the model, never the provider's answer or the key:
/// an answer may echo the key (OpenAI's "Incorrect API key provided: sk-…") or a user's prompt.
public struct ProviderFailures: Sendable {
    let provider: String
    let apiKey: String?
    let logger: Logger

    func rejected(status: Int, headers: [(String, String)], body: ByteBuffer?, model: String, operation: String) -> DomainError {
        logger.debug(
            "AI provider refused a call",
            metadata: [
                "provider": "\(provider)", "operation": "\(operation)", "status": "\(status)",
                "hint": "\(Self.hint(from: body, apiKey: apiKey) ?? "-")",
            ]
        )
        switch status {
        case 401, 403:
            return DomainError(
                .upstreamFailure, "the AI provider '\(provider)' refused the platform's API key",
                reason: ErrorReason.providerRejectedCredentials.rawValue)
        case 429:
            return DomainError(
                .resourceExhausted, "the AI provider '\(provider)' is rate limiting the platform; try again later",
                reason: ErrorReason.providerRateLimited.rawValue, retryAfterSeconds: Self.retryAfter(headers) ?? Self.defaultRetryAfterSeconds)
        case 408:
            return DomainError(.deadlineExceeded, "the AI provider '\(provider)' did not answer in time")
        case 400, 404, 409, 413, 415, 422:
            return DomainError(
                .failedPrecondition, "the AI provider '\(provider)' rejected the \(operation) request for model \(model.quotedForMessage)",
                reason: ErrorReason.providerRejectedRequest.rawValue)
        default:
            return DomainError(.upstreamFailure, "the AI provider '\(provider)' failed (HTTP \(status))")
        }
    }

    /// A failure before or while reading the answer. Cancellation stays cancellation.
    func transport(_ error: any Error, operation: String) -> any Error {
        if error is DomainError { return error }
        if Task.isCancelled || error is CancellationError { return CancellationError() }
        switch error {
        case ProviderHTTPError.connectTimeout, ProviderHTTPError.readTimeout, ChannelError.connectTimeout:
            return timedOut(operation: operation)
        default:
            break
        }
        if error is NIOTooManyBytesError {
            logger.debug("AI provider answer too large", metadata: ["provider": "\(provider)", "operation": "\(operation)"])
            return DomainError(.upstreamFailure, "the AI provider '\(provider)' sent an answer that is too large")
        }
        logger.debug(
            "AI provider unreachable",
            metadata: ["provider": "\(provider)", "operation": "\(operation)", "error.type": "\(type(of: error))"])
        return DomainError(.upstreamFailure, "could not reach the AI provider '\(provider)'")
    }

    func timedOut(operation: String) -> DomainError {
        logger.debug("AI provider timed out", metadata: ["provider": "\(provider)", "operation": "\(operation)"])
        return DomainError(.deadlineExceeded, "the AI provider '\(provider)' did not answer in time")
    }

    func unreadable(operation: String) -> DomainError {
        logger.debug("AI provider answer unreadable", metadata: ["provider": "\(provider)", "operation": "\(operation)"])
        return Self.unreadable(provider: provider)
    }

    /// An answer `provider` sent that is not one: the same failure wherever it is found.
    public static func unreadable(provider: String) -> DomainError {
        DomainError(.upstreamFailure, "the AI provider '\(provider)' sent an answer that could not be read")
    }

    /// What callers are told to wait when a rate-limiting provider does not say: clients are
    /// always given a `Retry-After`, and a short wait is what providers' own advice usually is.
    static let defaultRetryAfterSeconds = 5

    /// `Retry-After` as seconds or an HTTP date; at least 1 so a client never retries at once.
    static func retryAfter(_ headers: [(String, String)]) -> Int? {
        guard let text = headers.first(where: { $0.0.lowercased() == "retry-after" })?.1.trimmingCharacters(in: .whitespaces) else {
            return nil
        }
        if let seconds = Double(text), seconds.isFinite, seconds >= 0 {
            return max(1, Int(min(seconds, 86_400).rounded(.up)))
        }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: text) else { return nil }
        return max(1, min(86_400, Int(date.timeIntervalSinceNow.rounded(.up))))
    }

    /// The error's `type`/`code` when they look like identifiers, which cannot carry a key or a prompt.
    static func hint(from body: ByteBuffer?, apiKey: String?) -> String? {
        guard let body, let decoded = try? JSONDecoder().decode(OpenAIWire.ErrorBody.self, from: body) else { return nil }
        let parts = [decoded.error?.type, decoded.error?.code].compactMap { $0 }.filter { part in
            guard isIdentifier(part) else { return false }
            guard let apiKey, !apiKey.isEmpty else { return true }
            return !part.contains(apiKey) && !(part.count >= 6 && apiKey.contains(part))
        }
        return parts.isEmpty ? nil : parts.joined(separator: "/")
    }

    private static func isIdentifier(_ text: String) -> Bool {
        (1...48).contains(text.count)
            && text.unicodeScalars.allSatisfy { $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "_-.".unicodeScalars.contains($0)) }
    }
}
