/// The audio formats the platform takes and gives, as OpenAI's audio endpoints name them: one
/// list for the gateway's checks, the AI service's and the transcoder's.
public enum AudioFormats {
    /// Upload extensions a transcription accepts.
    public static let transcriptionUploads = ["flac", "m4a", "mp3", "mp4", "mpeg", "mpga", "ogg", "wav", "webm"]
    /// What a speech can be answered as (`response_format`).
    public static let speechOutputs = ["mp3", "opus", "aac", "flac", "wav", "pcm"]
}
