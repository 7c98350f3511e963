"""The few-shot benchmark's parts: real data at N images per class, and the references."""
