def accuracy(hits, total):
    return hits / total
