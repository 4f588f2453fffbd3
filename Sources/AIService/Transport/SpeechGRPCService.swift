import AISaaSProtos
import Foundation
import GRPCCore
import NIOCore
import Platform

/// `grpc.ai.v1.AiSpeechService`: speech to text and text to speech.
public struct SpeechGRPCService: Grpc_Ai_V1_AiSpeechService.SimpleServiceProtocol, DescribedService {
    /// Read once per call: a call works with one version of the settings throughout.
    let domain: LiveSetting<AIDomainServices>
    private var speech: SpeechService { domain.current.speech }
    public var serviceName: String { Grpc_Ai_V1_AiSpeechService.descriptor.fullyQualifiedService }

    public func createTranscription(request: Grpc_Ai_V1_CreateTranscriptionRequest, context: ServerContext) async throws -> Grpc_Ai_V1_CreateTranscriptionResponse {
        let caller = try Caller.current()
        let temperature: Double? = request.hasSamplingTemperature
            ? request.samplingTemperature
            : request.hasTemperature ? Double(request.temperature) : nil
        let input = TranscriptionInput(
            audio: ByteBuffer(bytes: request.buffer),
            filename: request.hasFilename ? request.filename : "",
            prompt: request.hasPrompt && !request.prompt.isEmpty ? request.prompt : nil,
            language: request.hasLanguageCode && !request.languageCode.isEmpty ? request.languageCode : nil,
            temperature: temperature
        )
        // A client that leaves stops the conversion and the provider call (booked as cut short).
        let speech = self.speech
        let text = try await RPCCancellation.untilRPCCancelled { try await speech.transcribe(input, caller: caller) }
        return .with { $0.text = text }
    }

    public func createSpeech(request: Grpc_Ai_V1_CreateSpeechRequest, context: ServerContext) async throws -> Grpc_Ai_V1_CreateSpeechResponse {
        let caller = try Caller.current()
        let input = SpeechInput(text: request.text, voice: request.hasVoice ? request.voice : nil, format: request.hasFormat ? request.format : nil)
        let speech = self.speech
        let audio = try await RPCCancellation.untilRPCCancelled { try await speech.speak(input, caller: caller) }
        return .with {
            $0.audio = Data(audio.audio.readableBytesView)
            $0.contentType = audio.contentType
        }
    }
}
