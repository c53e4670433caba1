"""The transport and the error tree shared by every read and write gc-tuner makes (the lowest layer)."""
